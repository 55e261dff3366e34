//! Compressed streams: the LZMA split into data and parse codes back bit
//! for bit, against liblzma in both directions, and packages that diff
//! streams decompressed apply exactly or are refused with a clear error.

mod common;

use fota_generator::streams::lzma::{self, Props};
use fota_generator::streams::{self, MIN_STREAM_LEN};
use fota_generator::{apply, diff, DeviceIdentity, DiffOptions};
use proptest::prelude::*;
use xz2::stream::{Action, LzmaOptions, Stream};

/// `data` as an "LZMA alone" file by liblzma (unknown size, end marker).
fn liblzma_alone(data: &[u8], preset: u32) -> Vec<u8> {
    let opts = LzmaOptions::new_preset(preset).unwrap();
    let mut enc = Stream::new_lzma_encoder(&opts).unwrap();
    let mut out = Vec::with_capacity(data.len() + 1024);
    enc.process_vec(data, &mut out, Action::Run).unwrap();
    loop {
        out.reserve(4096);
        if enc.process_vec(&[], &mut out, Action::Finish).unwrap() == xz2::stream::Status::StreamEnd
        {
            return out;
        }
    }
}

/// What liblzma decodes from an "LZMA alone" file.
fn liblzma_decode(file: &[u8]) -> Vec<u8> {
    let mut dec = Stream::new_lzma_decoder(u64::MAX).unwrap();
    let mut out = Vec::with_capacity(file.len() * 8);
    loop {
        out.reserve(1 << 16);
        let before = dec.total_in() as usize;
        let status = dec
            .process_vec(&file[before..], &mut out, Action::Run)
            .unwrap();
        if status == xz2::stream::Status::StreamEnd {
            return out;
        }
    }
}

fn firmware_like(seed: u64, len: usize) -> Vec<u8> {
    streams::synth::firmware_like(len, seed)
}

#[test]
fn liblzma_streams_split_and_code_back_bit_exactly() {
    for (seed, preset) in [(1, 0), (2, 6), (3, 9 | 0x8000_0000)] {
        let data = firmware_like(seed, 200_000);
        let file = liblzma_alone(&data, preset);
        let props = Props::from_byte(file[0]).unwrap();
        let d = lzma::decode(&file[13..], props, None, 1 << 30).unwrap();
        assert_eq!(d.data, data);
        assert!(d.end_marker);
        let coded = lzma::encode(&d.data, &d.parse, props).unwrap();
        assert_eq!(coded, file[13..], "preset {preset}");
    }
}

#[test]
fn known_size_streams_are_read_by_liblzma() {
    // A stream with its size in the header and no end marker, as EDK2
    // writes them: the parse of a liblzma stream without its last token.
    let data = firmware_like(7, 100_000);
    let file = liblzma_alone(&data, 6);
    let props = Props::from_byte(file[0]).unwrap();
    let d = lzma::decode(&file[13..], props, None, 1 << 30).unwrap();
    let parse = &d.parse[..d.parse.len() - 1];
    let body = lzma::encode(&data, parse, props).unwrap();
    let mut known = file[..5].to_vec();
    known.extend_from_slice(&(data.len() as u64).to_le_bytes());
    known.extend_from_slice(&body);
    assert_eq!(liblzma_decode(&known), data);
    let again = lzma::decode(&body, props, Some(data.len() as u64), 1 << 30).unwrap();
    assert_eq!((again.parse.as_slice(), again.end_marker), (parse, false));
}

#[test]
fn the_synthetic_coder_makes_streams_liblzma_reads() {
    let data = firmware_like(9, 70_000);
    let file = streams::synth::lzma_alone(&data);
    assert_eq!(liblzma_decode(&file), data);
    let (old, new) = streams::synth::stream_pair(30_000, 4);
    assert_eq!(streams::find(&old).len(), 1);
    assert_eq!(streams::find(&new).len(), 1);
}

#[test]
fn find_keeps_only_streams_that_code_back() {
    let data = firmware_like(11, 50_000);
    let file = liblzma_alone(&data, 6);
    let mut image = vec![0x5du8; 4096];
    image.extend_from_slice(&file);
    image.extend_from_slice(&[0xff; 3000]);
    let found = streams::find(&image);
    assert_eq!(found.len(), 1);
    let s = found[0].stream;
    assert_eq!((s.offset, s.len), (4096 + 13, file.len() as u64 - 13));
    assert!(s.end_marker && s.len >= MIN_STREAM_LEN);
    // A damaged stream is left alone (diffed as bytes).
    let mut broken = image.clone();
    broken[4096 + 13 + 500] ^= 0x40;
    assert!(streams::find(&broken).iter().all(|f| f.data != data));
}

#[test]
fn malformed_parses_are_refused_with_their_offset() {
    let props = Props::from_byte(0x5d).unwrap();
    let data = b"abcabcabcabc".to_vec();
    // Literals past the data.
    let e = lzma::encode(&data, &[0, 20], props).unwrap_err();
    assert_eq!(e.offset, 2);
    // A match before the start of the data.
    let e = lzma::encode(&data, &[0, 2, 6, 1, 9, 0, 0, 0], props).unwrap_err();
    assert!(e.what.contains("inside the data"), "{e}");
    // A match whose bytes differ from the data.
    let e = lzma::encode(&data, &[0, 2, 6, 7, 1, 0, 0, 0], props).unwrap_err();
    assert!(e.what.contains("equal the data"), "{e}");
    // Unknown tag, truncated varint, data left over.
    assert_eq!(lzma::encode(&data, &[9], props).unwrap_err().offset, 0);
    assert!(lzma::encode(&data, &[0, 0x80], props).is_err());
    assert!(lzma::encode(&data, &[0, 3], props)
        .unwrap_err()
        .what
        .contains("covers"));
    // A valid parse: 3 literals, then rep of distance 3 for 9 bytes.
    assert!(lzma::encode(&data, &[0, 2, 6, 7, 2, 0, 0, 0], props).is_ok());
}

#[test]
fn corrupt_streams_are_refused_not_panicked_on() {
    let data = firmware_like(5, 20_000);
    let file = liblzma_alone(&data, 6);
    let props = Props::from_byte(file[0]).unwrap();
    let body = &file[13..];
    assert!(lzma::decode(&body[..body.len() / 2], props, None, 1 << 30).is_err());
    assert!(lzma::decode(&[1, 0, 0, 0, 0, 0], props, None, 1 << 30).is_err());
    assert!(lzma::decode(body, props, None, 1000).is_err(), "size limit");
    for i in (0..body.len()).step_by(97) {
        let mut bad = body.to_vec();
        bad[i] ^= 0x5a;
        let _ = lzma::decode(&bad, props, Some(data.len() as u64), 1 << 22);
    }
}

/// Old and new firmware holding an LZMA stream whose data changed a little.
fn stream_pair() -> (Vec<u8>, Vec<u8>) {
    let data = firmware_like(21, 300_000);
    let mut data2 = data.clone();
    data2[150_000..150_010].copy_from_slice(b"0123456789");
    data2.splice(40_000..40_000, b"inserted bytes".iter().copied());
    let image = |d: &[u8], tail: u8| {
        let mut v = firmware_like(3, 20_000);
        v.extend_from_slice(&liblzma_alone(d, 6));
        v.extend(std::iter::repeat_n(tail, 5000));
        v
    };
    (image(&data, 1), image(&data2, 2))
}

#[test]
fn packages_diff_streams_decompressed_and_apply_bit_exactly() {
    let (old, new) = stream_pair();
    let key = common::key(7);
    let with = diff(&old, &new, &key, &DiffOptions::default()).unwrap();
    let stats = with.streams.expect("stream stage used");
    assert_eq!((stats.source_streams, stats.target_streams), (1, 1));
    let without = DiffOptions {
        decompress: false,
        ..DiffOptions::default()
    };
    let plain = diff(&old, &new, &key, &without).unwrap();
    assert!(plain.streams.is_none());
    assert!(
        with.package.len() * 4 < plain.package.len(),
        "{} vs {}",
        with.package.len(),
        plain.package.len()
    );
    let device = DeviceIdentity::default();
    let trusted = [key.verifying_key()];
    assert_eq!(
        apply::apply(&old, &with.package, &trusted, &device).unwrap(),
        new
    );
    // In place works the same way on the host.
    let in_place = DiffOptions {
        mode: fota_format::Mode::InPlace,
        ..DiffOptions::default()
    };
    let p = diff(&old, &new, &key, &in_place).unwrap();
    assert!(p.streams.is_some());
    assert_eq!(
        apply::apply(&old, &p.package, &trusted, &device).unwrap(),
        new
    );
    // Another source is refused before anything is decoded.
    let mut other = old.clone();
    other[10] ^= 1;
    assert_eq!(
        apply::apply(&other, &with.package, &trusted, &device).unwrap_err(),
        fota_format::Error::SourceHashMismatch
    );
    assert!(matches!(
        apply::apply(&old[1..], &with.package, &trusted, &device).unwrap_err(),
        fota_format::Error::SourceSizeMismatch { .. }
    ));
    // The tiny profile never uses the stage.
    let tiny = DiffOptions {
        profile: fota_format::Profile::Tiny,
        ..DiffOptions::default()
    };
    assert!(diff(&old, &new, &key, &tiny).unwrap().streams.is_none());
}

/// The stream table is authenticated like any op: by the chain, or by the
/// signature over the op section.
#[test]
fn a_tampered_stream_table_breaks_the_chain() {
    for chain in [true, false] {
        a_tampered_stream_table_is_refused(chain);
    }
}

fn a_tampered_stream_table_is_refused(chain: bool) {
    let (old, new) = stream_pair();
    let key = common::key(7);
    let opts = DiffOptions {
        chain,
        ..DiffOptions::default()
    };
    let pkg = diff(&old, &new, &key, &opts).unwrap().package;
    // Op 0's payload: the table.
    let op0 = fota_format::Package::parse(&pkg)
        .unwrap()
        .ops_unverified()
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let at = op0.payload_offset as usize;
    let mut bad = pkg.clone();
    bad[at + 100] ^= 1;
    let err = apply::apply(
        &old,
        &bad,
        &[key.verifying_key()],
        &DeviceIdentity::default(),
    )
    .unwrap_err();
    let refused = match chain {
        true => matches!(err, fota_format::Error::OpHashMismatch { op_index: 0, .. }),
        false => matches!(err, fota_format::Error::BadSignature),
    };
    assert!(refused, "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any data liblzma compresses splits and codes back to the same bytes,
    /// and what our coder makes from the split liblzma decodes.
    #[test]
    fn split_and_code_back_round_trips(
        seed in any::<u64>(),
        len in 1usize..40_000,
        preset in 0u32..7,
        lc in 0u32..5,
        lp in 0u32..3,
        pb in 0u32..3,
    ) {
        let data = firmware_like(seed, len);
        let mut opts = LzmaOptions::new_preset(preset).unwrap();
        // liblzma takes lc + lp <= 4.
        let lp = lp.min(4 - lc);
        opts.literal_context_bits(lc).literal_position_bits(lp).position_bits(pb);
        let mut enc = Stream::new_lzma_encoder(&opts).unwrap();
        let mut file = Vec::with_capacity(len + 4096);
        loop {
            file.reserve(1 << 16);
            let pos = enc.total_in() as usize;
            let action = if pos == len { Action::Finish } else { Action::Run };
            if enc.process_vec(&data[pos..], &mut file, action).unwrap() == xz2::stream::Status::StreamEnd {
                break;
            }
        }
        let props = Props::from_byte(file[0]).unwrap();
        let d = lzma::decode(&file[13..], props, None, 1 << 30).unwrap();
        prop_assert_eq!(&d.data, &data);
        let coded = lzma::encode(&d.data, &d.parse, props).unwrap();
        prop_assert_eq!(&coded[..], &file[13..]);
        prop_assert_eq!(liblzma_decode(&file), data);
    }
}

/// `data` deflated by miniz_oxide (flate2) at `level`, as zlib, gzip or raw.
fn deflated(data: &[u8], level: u32, wrap: u8) -> Vec<u8> {
    use std::io::Write;
    let level = flate2::Compression::new(level);
    match wrap {
        0 => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        1 => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = flate2::GzBuilder::new()
                .filename("firmware.bin")
                .write(Vec::new(), level);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
    }
}

#[test]
fn deflate_streams_split_and_code_back_bit_exactly() {
    use fota_generator::streams::deflate;
    let data = firmware_like(31, 150_000);
    for level in 0..=9 {
        let raw = deflated(&data, level, 0);
        let d = deflate::decode(&raw, 1 << 30).unwrap();
        assert_eq!(d.data, data, "level {level}");
        assert_eq!(d.read, raw.len());
        assert_eq!(
            deflate::encode(&d.data, &d.parse).unwrap(),
            raw,
            "level {level}"
        );
    }
    // Empty data and a stream followed by other bytes.
    let mut raw = deflated(b"", 6, 0);
    let n = raw.len();
    raw.extend_from_slice(b"trailer");
    let d = deflate::decode(&raw, 1 << 20).unwrap();
    assert_eq!((d.data.len(), d.read), (0, n));
}

#[test]
fn gzip_zlib_and_zip_members_are_found_and_packages_apply() {
    let data = firmware_like(41, 80_000);
    let mut changed = data.clone();
    changed[40_000..40_004].copy_from_slice(b"edit");
    for wrap in [1u8, 2] {
        let image = |d: &[u8]| {
            let mut v = firmware_like(2, 3000);
            v.extend_from_slice(&deflated(d, 9, wrap));
            v.extend_from_slice(&[0u8; 700]);
            v
        };
        let (old, new) = (image(&data), image(&changed));
        let found = streams::find(&new);
        assert_eq!(found.len(), 1, "wrap {wrap}");
        assert_eq!(found[0].data, changed);
        let key = common::key(3);
        let with = diff(&old, &new, &key, &DiffOptions::default()).unwrap();
        let plain = DiffOptions {
            decompress: false,
            ..DiffOptions::default()
        };
        let without = diff(&old, &new, &key, &plain).unwrap();
        assert!(
            with.package.len() * 3 < without.package.len(),
            "wrap {wrap}: {} vs {}",
            with.package.len(),
            without.package.len()
        );
        let out = apply::apply(
            &old,
            &with.package,
            &[key.verifying_key()],
            &DeviceIdentity::default(),
        );
        assert_eq!(out.unwrap(), new);
    }
}

#[test]
fn malformed_deflate_is_refused_not_panicked_on() {
    use fota_generator::streams::deflate;
    let raw = deflated(&firmware_like(8, 30_000), 6, 0);
    assert!(deflate::decode(&raw[..raw.len() / 2], 1 << 30).is_err());
    assert!(deflate::decode(&[0x07], 1 << 30).is_err(), "block type 3");
    assert!(deflate::decode(&raw, 1000).is_err(), "size limit");
    for i in (0..raw.len()).step_by(53) {
        let mut bad = raw.clone();
        bad[i] ^= 0x24;
        if let Ok(d) = deflate::decode(&bad, 1 << 20) {
            // Whatever decodes codes back to a stream that decodes the same.
            let again = deflate::encode(&d.data, &d.parse).unwrap();
            assert_eq!(deflate::decode(&again, 1 << 20).unwrap().data, d.data);
        }
    }
    let data = b"abcabcabc";
    // Fixed block, 3 literals, a match at distance 3, end; tail bits.
    let good = [0x11, 1, 0, 2, 6, 3, 2, 7, 8, 0];
    let coded = deflate::encode(data, &good).unwrap();
    assert_eq!(deflate::decode(&coded, 100).unwrap().data, data);
    let e = deflate::encode(data, &[0x11, 1, 0, 2, 6, 3, 9, 7, 8, 0]).unwrap_err();
    assert!(e.what.contains("inside the data"), "{e}");
    assert!(deflate::encode(data, &[0x13, 1]).is_err());
    assert!(
        deflate::encode(data, &[0x11, 1, 0, 9, 7, 8, 0]).is_err(),
        "past the data"
    );
    assert!(
        deflate::encode(data, &[0x11, 1, 0, 2, 6, 3, 2, 7, 8, 0xff]).is_err(),
        "tail bits"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Any data deflated at any level splits and codes back to the same bytes.
    #[test]
    fn deflate_split_and_code_back_round_trips(
        seed in any::<u64>(),
        len in 0usize..30_000,
        level in 0u32..10,
    ) {
        use fota_generator::streams::deflate;
        let data = firmware_like(seed, len);
        let raw = deflated(&data, level, 0);
        let d = deflate::decode(&raw, 1 << 30).unwrap();
        prop_assert_eq!(&d.data, &data);
        prop_assert_eq!(deflate::encode(&d.data, &d.parse).unwrap(), raw);
    }
}

/// `data` as an `.xz` file by liblzma at `preset` (one block, CRC64).
fn xz_file(data: &[u8], preset: u32) -> Vec<u8> {
    let mut enc = Stream::new_easy_encoder(preset, xz2::stream::Check::Crc64).unwrap();
    let mut out = Vec::with_capacity(data.len() + 4096);
    loop {
        out.reserve(1 << 16);
        let pos = enc.total_in() as usize;
        let action = if pos == data.len() {
            Action::Finish
        } else {
            Action::Run
        };
        if enc.process_vec(&data[pos..], &mut out, action).unwrap()
            == xz2::stream::Status::StreamEnd
        {
            return out;
        }
    }
}

#[test]
fn xz_files_split_and_code_back_bit_exactly() {
    // Stored chunks (incompressible bytes) and LZMA chunks of every reset kind.
    let mut data = firmware_like(51, 300_000);
    let mut x = 7u64;
    data.extend((0..70_000).map(|_| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 56) as u8
    }));
    data.extend_from_slice(&firmware_like(52, 100_000));
    for preset in [0, 6, 9] {
        let file = xz_file(&data, preset);
        let mut image = firmware_like(1, 2000);
        let at = image.len();
        image.extend_from_slice(&file);
        let found = streams::find(&image);
        assert_eq!(found.len(), 1, "preset {preset}");
        let f = &found[0];
        assert_eq!(f.stream.codec, fota_format::streams::StreamCodec::Lzma2);
        assert_eq!(f.data, data);
        assert!(f.stream.offset > at as u64);
        let back = lzma::encode2(&f.data, &f.parse).unwrap();
        let start = f.stream.offset as usize;
        assert_eq!(back, image[start..start + back.len()]);
    }
    // Damaged chunks are refused, not panicked on.
    let file = xz_file(&data[..50_000], 6);
    for i in (12..file.len()).step_by(41) {
        let mut bad = file.clone();
        bad[i] ^= 0x11;
        if let Ok(d) = lzma::decode2(&bad[24..], 1 << 22) {
            let again = lzma::encode2(&d.data, &d.parse).unwrap();
            assert_eq!(lzma::decode2(&again, 1 << 22).unwrap().data, d.data);
        }
    }
    assert!(
        lzma::decode2(&[0x80, 0, 0, 0, 4], 1 << 20).is_err(),
        "no props yet"
    );
    assert!(lzma::decode2(&[0x03], 1 << 20).is_err(), "bad control");
    assert!(
        lzma::encode2(b"ab", &[0x21, 1, 1, 0]).is_err(),
        "no end token"
    );
    assert_eq!(
        lzma::encode2(b"ab", &[0x21, 1, 1, 0, 0x22]).unwrap(),
        [1, 0, 1, b'a', b'b', 0]
    );
}
