//! A ustar archive writer: the container of a Mender artifact and of the
//! header and payload archives inside it (what Python's `tarfile` writes
//! with `format=USTAR_FORMAT`, which mender-client 3.4 was checked with).
//!
//! ```text
//! member   header block (512 bytes) | data | zeros to a 512-byte block
//! header   name[100] mode[8] uid[8] gid[8] size[12] mtime[12] chksum[8]
//!          typeflag[1] linkname[100] "ustar\0" "00" uname[32] gname[32]
//!          devmajor[8] devminor[8] prefix[155] pad[12]
//! end      two zero blocks, then zeros to a whole record of 10240 bytes
//! ```
//!
//! Numbers are octal ASCII, zero-filled, ending in a NUL (`size` and
//! `mtime` take 11 digits, the other fields 7); `chksum` is the sum of the
//! header's bytes with the field itself counted as spaces, written as six
//! digits, a NUL and a space. The device numbers, unused by a regular
//! file, stay NUL bytes, as `tarfile` leaves them. Every member is a regular file (typeflag
//! `0`, mode 0644, owner 0 with empty owner names, mtime 0), so the same
//! inputs always make the same archive. Names go whole into `name` (at
//! most 100 bytes, no `prefix` split).
//!
//! The padding to a whole record is what `tar` and `tarfile` do; it also
//! makes every archive at least 10240 bytes, above the 4096 bytes
//! mender-client requires of a download.

use super::{Error, Result};

/// Size of a header and the unit of data padding.
pub const BLOCK: usize = 512;

/// The archive is zero-padded to a multiple of this many bytes (20
/// blocks, the default of `tar` and `tarfile`) after its two end blocks.
pub const RECORD: usize = 20 * BLOCK;

/// Longest member name: the whole `name` field, without a NUL.
pub const NAME_LEN: usize = 100;

/// Permission bits of every member: `rw-r--r--`.
pub const MODE: u32 = 0o644;

/// Largest member: the 11 octal digits of the `size` field.
pub const MAX_SIZE: u64 = 0o777_7777_7777;

/// Builds an archive member by member, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Appends a regular file `name` holding `data`.
    ///
    /// # Errors
    /// [`Error::TarName`] for an empty name, a name with a NUL byte or one
    /// longer than [`NAME_LEN`] bytes; [`Error::TarLimit`] for data larger
    /// than [`MAX_SIZE`]. The archive is unchanged on error.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let bad = |reason| Error::TarName {
            name: name.chars().take(2 * NAME_LEN).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if name.len() > NAME_LEN {
            return Err(bad("longer than the 100 bytes of a ustar name"));
        }
        let size = data.len() as u64;
        if size > MAX_SIZE {
            return Err(Error::TarLimit {
                name: name.to_string(),
                size,
                limit: MAX_SIZE,
            });
        }
        self.out.extend_from_slice(&header(name, size));
        self.out.extend_from_slice(data);
        self.pad(BLOCK);
        Ok(())
    }

    /// Appends the two zero blocks that end an archive and the padding to
    /// a whole record, and returns the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.out.resize(self.out.len() + 2 * BLOCK, 0);
        self.pad(RECORD);
        self.out
    }

    /// Bytes written so far (the archive without its end).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True before the first member.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    fn pad(&mut self, unit: usize) {
        let len = self.out.len().next_multiple_of(unit);
        self.out.resize(len, 0);
    }
}

/// The header block of a regular file; `name` and `size` are checked by
/// the caller.
fn header(name: &str, size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, &octal(MODE.into(), 8));
    put(&mut h, 108, &octal(0, 8)); // uid
    put(&mut h, 116, &octal(0, 8)); // gid
    put(&mut h, 124, &octal(size, 12));
    put(&mut h, 136, &octal(0, 12)); // mtime
    put(&mut h, 148, b"        "); // chksum, counted as spaces
    put(&mut h, 156, b"0"); // a regular file
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum = checksum(&h);
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Copies `bytes` into the header at `at` (the fields are constant and
/// inside the block; the name is checked to fit).
fn put(h: &mut [u8; BLOCK], at: usize, bytes: &[u8]) {
    if let Some(field) = h.get_mut(at..at + bytes.len()) {
        field.copy_from_slice(bytes);
    }
}

/// `value` in octal, zero-filled to `width - 1` digits, then a NUL.
fn octal(value: u64, width: usize) -> Vec<u8> {
    let mut v = format!("{value:0digits$o}", digits = width - 1).into_bytes();
    v.push(0);
    v
}

/// A header's checksum: the sum of its bytes, read as unsigned.
pub fn checksum(header: &[u8; BLOCK]) -> u32 {
    header.iter().map(|b| u32::from(*b)).sum()
}

/// An archive of `members` (name and data), in order, with its end.
///
/// # Errors
/// As [`Writer::add`].
pub fn archive<'a>(members: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<Vec<u8>> {
    let mut w = Writer::new();
    for (name, data) in members {
        w.add(name, data)?;
    }
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One member as read back.
    #[derive(Debug, PartialEq, Eq)]
    struct Member {
        name: String,
        data: Vec<u8>,
    }

    /// The octal number in `field`: digits, then NUL (or NUL and space).
    fn number(field: &[u8]) -> u64 {
        let digits: &[u8] = match field.iter().position(|b| *b == 0) {
            Some(end) => &field[..end],
            None => field,
        };
        assert_eq!(digits.len(), field.len() - 1, "zero-filled: {field:?}");
        assert!(
            digits.iter().all(|b| (b'0'..=b'7').contains(b)),
            "{field:?}"
        );
        u64::from_str_radix(std::str::from_utf8(digits).unwrap(), 8).unwrap()
    }

    /// A strict reader: checks every header field this writer sets (and
    /// that the others are zero), the checksum, zero padding, the two end
    /// blocks and the record padding. Returns the members.
    fn read(archive: &[u8]) -> Vec<Member> {
        assert_eq!(archive.len() % RECORD, 0, "whole records");
        let mut at = 0;
        let mut members = Vec::new();
        loop {
            let h: &[u8; BLOCK] = archive[at..at + BLOCK].try_into().unwrap();
            if h.iter().all(|b| *b == 0) {
                assert!(
                    archive[at..].iter().all(|b| *b == 0),
                    "only zeros after the first zero block"
                );
                assert!(archive.len() - at >= 2 * BLOCK, "two end blocks");
                assert!(
                    archive.len() - at < 2 * BLOCK + RECORD,
                    "at most one record of padding"
                );
                return members;
            }
            let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
            assert!(h[name_end..100].iter().all(|b| *b == 0), "name padding");
            let name = String::from_utf8(h[..name_end].to_vec()).unwrap();
            assert_eq!(number(&h[100..108]), 0o644, "mode");
            assert_eq!(number(&h[108..116]), 0, "uid");
            assert_eq!(number(&h[116..124]), 0, "gid");
            let size = number(&h[124..136]) as usize;
            assert_eq!(number(&h[136..148]), 0, "mtime");
            assert_eq!(&h[154..156], b"\0 ", "checksum ends in NUL, space");
            let stored = number(&h[148..155]) as u32;
            let mut blank = *h;
            blank[148..156].copy_from_slice(b"        ");
            assert_eq!(stored, checksum(&blank), "checksum of {name}");
            assert_eq!(h[156], b'0', "a regular file");
            assert!(h[157..257].iter().all(|b| *b == 0), "no link name");
            assert_eq!(&h[257..265], b"ustar\x0000", "ustar magic");
            assert!(
                h[265..].iter().all(|b| *b == 0),
                "no owner names, devices, prefix"
            );
            let data_at = at + BLOCK;
            let data = archive[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(BLOCK);
            assert!(
                archive[data_at + size..next].iter().all(|b| *b == 0),
                "data padding is zeros"
            );
            members.push(Member { name, data });
            at = next;
        }
    }

    #[test]
    fn members_in_order_with_their_data() {
        let a = archive([
            ("version", &br#"{"format":"mender","version":3}"#[..]),
            ("empty", &[][..]),
            ("data/0000.tar.gz", &[7u8; 1000][..]),
            ("block", &[1u8; 512][..]),
        ])
        .unwrap();
        let m = read(&a);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["version", "empty", "data/0000.tar.gz", "block"]);
        assert_eq!(m[2].data, vec![7u8; 1000]);
        assert!(m[1].data.is_empty());
        // 4 headers, 1 + 0 + 2 + 1 data blocks, 2 end blocks: 10 blocks,
        // padded to one record.
        assert_eq!(a.len(), RECORD);
    }

    /// The first header byte for byte, as Python's `tarfile` (USTAR_FORMAT,
    /// mtime 0, mode 0644, no owner names) writes it.
    #[test]
    fn exact_bytes_of_a_header() {
        let a = archive([("ab", &b"xyz"[..])]).unwrap();
        let mut expected = vec![0u8; BLOCK];
        expected[..2].copy_from_slice(b"ab");
        expected[100..108].copy_from_slice(b"0000644\0");
        expected[108..116].copy_from_slice(b"0000000\0");
        expected[116..124].copy_from_slice(b"0000000\0");
        expected[124..136].copy_from_slice(b"00000000003\0");
        expected[136..148].copy_from_slice(b"00000000000\0");
        expected[148..156].copy_from_slice(b"006243\0 ");
        expected[156] = b'0';
        expected[257..265].copy_from_slice(b"ustar\x0000");
        assert_eq!(&a[..BLOCK], &expected[..]);
        assert_eq!(&a[BLOCK..BLOCK + 4], b"xyz\0");
        assert!(a[BLOCK + 3..].iter().all(|b| *b == 0));
        assert_eq!(a.len(), RECORD);
    }

    #[test]
    fn an_empty_archive_is_one_record_of_zeros() {
        let a = Writer::new().finish();
        assert_eq!(a.len(), RECORD);
        assert!(a.iter().all(|b| *b == 0));
        assert!(read(&a).is_empty());
    }

    #[test]
    fn archives_grow_by_whole_records() {
        // 19 blocks of data + 1 header + 2 end blocks = 22 blocks: two records.
        let a = archive([("big", &vec![0xAB; 19 * BLOCK][..])]).unwrap();
        assert_eq!(a.len(), 2 * RECORD);
        assert_eq!(read(&a)[0].data.len(), 19 * BLOCK);
    }

    #[test]
    fn names_up_to_100_bytes() {
        let longest = "n".repeat(NAME_LEN);
        let a = archive([(longest.as_str(), &b"x"[..])]).unwrap();
        assert_eq!(read(&a)[0].name, longest);
        let unicode = "ü".repeat(50);
        assert_eq!(unicode.len(), 100);
        let a = archive([(unicode.as_str(), &b"x"[..])]).unwrap();
        assert_eq!(read(&a)[0].name, unicode);
    }

    #[test]
    fn refused_names_leave_the_archive_unchanged() {
        let mut w = Writer::new();
        w.add("first", b"1").unwrap();
        let before = w.len();
        let long = "n".repeat(NAME_LEN + 1);
        let long_unicode = "ü".repeat(51);
        for (name, reason) in [
            ("", "empty"),
            ("a\0b", "NUL"),
            (long.as_str(), "100 bytes"),
            (long_unicode.as_str(), "100 bytes"),
        ] {
            let e = w.add(name, b"data").unwrap_err();
            assert!(
                matches!(&e, Error::TarName { reason: r, .. } if r.contains(reason)),
                "{name:?}: {e}"
            );
            assert_eq!(w.len(), before);
        }
        let m = read(&w.finish());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "first");
    }

    /// Sizes past 8 GiB cannot be built in a test; the field holds the
    /// largest allowed one.
    #[test]
    fn the_size_field_holds_the_largest_size() {
        assert_eq!(octal(MAX_SIZE, 12), b"77777777777\0");
        assert_eq!(number(&octal(MAX_SIZE, 12)), MAX_SIZE);
        let h = header("x", MAX_SIZE);
        assert_eq!(&h[124..136], b"77777777777\0");
    }

    /// GNU tar, when it is installed, lists what this writer wrote.
    #[test]
    fn tar_lists_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        let a = archive([
            ("version", &b"{}"[..]),
            ("headers/0000/type-info", &[b'x'; 600][..]),
        ])
        .unwrap();
        std::fs::write(&path, &a).unwrap();
        let out = match std::process::Command::new("tar")
            .env("TZ", "UTC")
            .arg("-tvf")
            .arg(&path)
            .output()
        {
            Ok(out) => out,
            Err(e) => {
                eprintln!("skipped: no tar to list the archive with ({e})");
                return;
            }
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 2, "{listing}");
        assert!(lines[0].starts_with("-rw-r--r--"), "{listing}");
        assert!(lines[0].ends_with(" version"), "{listing}");
        assert!(lines[0].contains(" 2 1970-01-01 00:00 "), "{listing}");
        assert!(lines[1].contains(" 600 1970-01-01 00:00 "), "{listing}");
        assert!(lines[1].ends_with(" headers/0000/type-info"), "{listing}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any list of files reads back with the same names, data and
        /// order, in whole records.
        #[test]
        fn arbitrary_file_lists_round_trip(
            files in proptest::collection::vec(
                ("[^\u{0}]{1,25}", proptest::collection::vec(any::<u8>(), 0..1500)),
                0..12,
            )
        ) {
            let files: Vec<(String, Vec<u8>)> =
                files.into_iter().filter(|(n, _)| n.len() <= NAME_LEN).collect();
            let a = archive(files.iter().map(|(n, d)| (n.as_str(), d.as_slice()))).unwrap();
            prop_assert_eq!(a.len() % RECORD, 0);
            let back = read(&a);
            prop_assert_eq!(back.len(), files.len());
            for (m, (name, data)) in back.iter().zip(&files) {
                prop_assert_eq!(&m.name, name);
                prop_assert_eq!(&m.data, data);
            }
        }
    }
}
