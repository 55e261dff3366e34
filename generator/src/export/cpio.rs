//! A cpio "newc" archive writer, with the CRC variant's checksums: the
//! container of a `.swu` (what `cpio -o -H crc` writes).
//!
//! ```text
//! member   "070702" | 13 fields of 8 upper-case hex digits | name NUL | pad | data | pad
//!          ino mode uid gid nlink mtime filesize devmajor devminor
//!          rdevmajor rdevminor namesize chksum
//! end      a member named "TRAILER!!!" (size 0), then zeros to a 512-byte block
//! ```
//!
//! Padding brings the name and the data each to a multiple of 4 bytes from
//! the start of the archive. `chksum` is the 32-bit wrapping sum of the
//! data bytes; swupdate checks it for `070702` members. Every member is a
//! regular file (mode 0100644, one link, owner 0, mtime 0, so the same
//! inputs always make the same archive) with inode numbers counting up
//! from 1.

use super::{Error, Result};

/// Magic of the "newc" format with checksums (`070701` is the one without).
pub const MAGIC: &[u8; 6] = b"070702";

/// Bytes of a member header before the name: the magic and 13 fields.
pub const HEADER_LEN: usize = 110;

/// Name of the member that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// Mode of every member: a regular file, `rw-r--r--`.
pub const MODE_FILE: u32 = 0o100644;

/// The archive is zero-padded to a multiple of this many bytes after the
/// trailer, as `cpio` does (readers ignore the padding).
pub const BLOCK: usize = 512;

/// Builds an archive member by member, in the order given.
#[derive(Debug, Clone)]
pub struct Writer {
    out: Vec<u8>,
    next_ino: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Writer::new()
    }
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Writer {
        Writer {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// Appends a regular file `name` holding `data`.
    ///
    /// # Errors
    /// [`Error::CpioName`] for an empty name, a name with a NUL byte or the
    /// trailer's name; [`Error::CpioLimit`] when the data, the name or the
    /// member count do not fit the format's 32-bit fields. The archive is
    /// unchanged on error.
    pub fn add(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let bad = |reason| Error::CpioName {
            name: name.to_string(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.contains('\0') {
            return Err(bad("contains a NUL byte"));
        }
        if name == TRAILER {
            return Err(bad("the name of the archive's end marker"));
        }
        let size = field(name, "the size", data.len())?;
        let ino = self.next_ino;
        let next = ino.checked_add(1).ok_or_else(|| Error::CpioLimit {
            name: name.to_string(),
            what: "the member count",
            value: ino.into(),
            limit: u64::from(u32::MAX) - 1,
        })?;
        // namesize counts the NUL.
        let namesize = field(name, "the name length", name.len().saturating_add(1))?;
        self.header(ino, MODE_FILE, size, name, namesize, checksum(data));
        self.next_ino = next;
        self.out.extend_from_slice(data);
        self.pad(4);
        Ok(())
    }

    /// Appends the trailer and the padding to a whole block, and returns
    /// the archive.
    pub fn finish(mut self) -> Vec<u8> {
        // "TRAILER!!!" and its NUL: 11 bytes.
        self.header(0, 0, 0, TRAILER, TRAILER.len() as u32 + 1, 0);
        self.pad(BLOCK);
        self.out
    }

    /// Bytes written so far (the archive without its trailer).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// True before the first member.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Writes a header and the padded name; `namesize` counts the NUL.
    fn header(&mut self, ino: u32, mode: u32, size: u32, name: &str, namesize: u32, chksum: u32) {
        // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
        // rdevmajor, rdevminor, namesize, chksum
        let fields = [ino, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, namesize, chksum];
        self.out.extend_from_slice(MAGIC);
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad(4);
    }

    fn pad(&mut self, unit: usize) {
        let len = self.out.len().next_multiple_of(unit);
        self.out.resize(len, 0);
    }
}

/// `value` as a 32-bit header field of member `name`.
fn field(name: &str, what: &'static str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::CpioLimit {
        name: name.chars().take(64).collect(),
        what,
        value: value as u64,
        limit: u32::MAX.into(),
    })
}

/// The newc CRC format's checksum of a member: the sum of its data bytes,
/// modulo 2^32.
pub fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |sum, b| sum.wrapping_add(u32::from(*b)))
}

/// An archive of `members` (name and data), in order, with its trailer.
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

    /// One member as read back, every header field kept.
    #[derive(Debug, PartialEq, Eq)]
    struct Member {
        fields: [u32; 13],
        name: String,
        data: Vec<u8>,
    }

    /// A strict reader: checks the magic, hex digits, NUL-terminated names,
    /// zero padding at 4-byte offsets, checksums, the trailer, and the
    /// zero tail to a 512-byte block. Returns the members before the
    /// trailer.
    fn read(archive: &[u8]) -> Vec<Member> {
        let mut at = 0usize;
        let mut members = Vec::new();
        loop {
            assert_eq!(at % 4, 0, "header at {at} not 4-byte aligned");
            let h = &archive[at..at + HEADER_LEN];
            assert_eq!(&h[..6], MAGIC, "magic at {at}");
            let mut fields = [0u32; 13];
            for (i, f) in fields.iter_mut().enumerate() {
                let hex = std::str::from_utf8(&h[6 + 8 * i..14 + 8 * i]).unwrap();
                assert!(
                    hex.bytes()
                        .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
                    "upper-case hex: {hex}"
                );
                *f = u32::from_str_radix(hex, 16).unwrap();
            }
            let (namesize, size) = (fields[11] as usize, fields[6] as usize);
            let name_at = at + HEADER_LEN;
            let name_bytes = &archive[name_at..name_at + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name NUL-terminated");
            let name = std::str::from_utf8(&name_bytes[..namesize - 1])
                .unwrap()
                .to_string();
            assert!(!name.contains('\0'));
            let data_at = (name_at + namesize).next_multiple_of(4);
            assert!(
                archive[name_at + namesize..data_at].iter().all(|b| *b == 0),
                "name padding is zeros"
            );
            let data = archive[data_at..data_at + size].to_vec();
            let next = (data_at + size).next_multiple_of(4);
            assert!(
                archive[data_at + size..next].iter().all(|b| *b == 0),
                "data padding is zeros"
            );
            let sum = data.iter().fold(0u32, |s, b| s.wrapping_add(u32::from(*b)));
            assert_eq!(fields[12], sum, "checksum of {name}");
            at = next;
            if name == TRAILER {
                assert_eq!(size, 0);
                assert_eq!(fields[0], 0, "trailer inode");
                assert_eq!(archive.len() % BLOCK, 0, "whole blocks");
                assert!(archive[at..].iter().all(|b| *b == 0), "zero tail");
                assert!(archive.len() - at < BLOCK, "at most one block of padding");
                return members;
            }
            members.push(Member { fields, name, data });
        }
    }

    #[test]
    fn members_in_order_with_their_fields() {
        let a = archive([
            ("sw-description", &b"software = {};\n"[..]),
            ("sw-description.sig", &[0xff, 0x00, 0x80][..]),
            ("empty", &[][..]),
            ("update.fota", &[7u8; 1000][..]),
        ])
        .unwrap();
        let m = read(&a);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "sw-description",
                "sw-description.sig",
                "empty",
                "update.fota"
            ]
        );
        for (i, m) in m.iter().enumerate() {
            let f = m.fields;
            assert_eq!(f[0], i as u32 + 1, "ino counts up from 1");
            assert_eq!(f[1], 0o100644, "mode");
            assert_eq!((f[2], f[3]), (0, 0), "uid, gid");
            assert_eq!(f[4], 1, "nlink");
            assert_eq!(f[5], 0, "mtime");
            assert_eq!(f[6] as usize, m.data.len(), "size");
            assert_eq!(&f[7..11], &[0; 4], "devices");
            assert_eq!(f[11] as usize, m.name.len() + 1, "namesize");
        }
        assert_eq!(m[1].fields[12], 0xff + 0x80, "byte sum");
        assert_eq!(m[3].fields[12], 7000);
        assert_eq!(m[3].data, vec![7u8; 1000]);
    }

    /// The first member byte for byte, as `cpio -o -H crc` (and the
    /// reference writer swupdate was checked with) lays it out.
    #[test]
    fn exact_bytes_of_a_member() {
        let a = archive([("ab", &b"xyz"[..])]).unwrap();
        let expected_header = "070702\
            00000001000081A4000000000000000000000001000000000000000300000000\
            00000000000000000000000000000003\
            0000016B"; // 0x78 + 0x79 + 0x7a
        assert_eq!(&a[..HEADER_LEN], expected_header.as_bytes());
        // Name "ab\0" ends at 113; padded to 116. Data at 116..119, padded to 120.
        assert_eq!(&a[110..116], b"ab\0\0\0\0");
        assert_eq!(&a[116..120], b"xyz\0");
        assert_eq!(&a[120..126], MAGIC);
        assert_eq!(a.len(), 512);
    }

    #[test]
    fn an_empty_archive_is_just_the_trailer() {
        let a = Writer::new().finish();
        assert!(read(&a).is_empty());
        assert_eq!(a.len(), BLOCK);
    }

    #[test]
    fn checksum_wraps_at_32_bits() {
        let a = archive([("x", &[0xffu8; 4096][..])]).unwrap();
        assert_eq!(read(&a)[0].fields[12], 0xff * 4096);
        // 0xff * 16,843,010 = 2^32 + 254.
        assert_eq!(checksum(&vec![0xffu8; 16_843_010]), 254);
    }

    #[test]
    fn refused_names_leave_the_archive_unchanged() {
        let mut w = Writer::new();
        w.add("first", b"1").unwrap();
        let before = w.len();
        for (name, reason) in [("", "empty"), ("a\0b", "NUL"), (TRAILER, "end marker")] {
            let e = w.add(name, b"data").unwrap_err();
            assert!(
                matches!(&e, Error::CpioName { reason: r, .. } if r.contains(reason)),
                "{name:?}: {e}"
            );
            assert_eq!(w.len(), before);
        }
        let m = read(&w.finish());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "first");
    }

    #[test]
    fn member_count_limit() {
        let mut w = Writer::new();
        w.next_ino = u32::MAX;
        let e = w.add("last", b"").unwrap_err();
        assert!(
            matches!(
                e,
                Error::CpioLimit {
                    what: "the member count",
                    ..
                }
            ),
            "{e}"
        );
    }

    /// Sizes past 4 GiB cannot be built in a test; the conversion that
    /// refuses them can be called with the number.
    #[test]
    fn fields_over_32_bits_are_refused() {
        assert_eq!(field("x", "the size", u32::MAX as usize).unwrap(), u32::MAX);
        let e = field("x", "the size", u32::MAX as usize + 1).unwrap_err();
        assert!(
            matches!(
                e,
                Error::CpioLimit {
                    what: "the size",
                    value: 0x1_0000_0000,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("at most 4294967295"), "{e}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any list of files reads back with the same names, data and
        /// order, and well-formed fields.
        #[test]
        fn arbitrary_file_lists_round_trip(
            files in proptest::collection::vec(
                ("[^\u{0}]{1,40}", proptest::collection::vec(any::<u8>(), 0..600)),
                0..12,
            )
        ) {
            let files: Vec<(String, Vec<u8>)> =
                files.into_iter().filter(|(n, _)| n != TRAILER).collect();
            let a = archive(files.iter().map(|(n, d)| (n.as_str(), d.as_slice()))).unwrap();
            let back = read(&a);
            prop_assert_eq!(back.len(), files.len());
            for (i, (m, (name, data))) in back.iter().zip(&files).enumerate() {
                prop_assert_eq!(&m.name, name);
                prop_assert_eq!(&m.data, data);
                prop_assert_eq!(m.fields[0], i as u32 + 1);
                prop_assert_eq!(m.fields[11] as usize, name.len() + 1);
            }
        }
    }
}
