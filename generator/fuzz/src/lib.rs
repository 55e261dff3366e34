//! What the generator's fuzz targets run; the seed replay test
//! (`generator/tests/fuzz_seeds.rs`) includes this file, so it uses no
//! dependency but `fota-generator`.

use fota_generator::streams::lzma::{self, Props};

/// Most data one input may decode to.
const MAX_DATA: u64 = 1 << 20;

/// The `lzma` target. Byte 0 picks the props (mod 225), byte 1 the mode.
/// Mode bit 0 clear: the rest is a compressed stream, decoded (with a size
/// from the mode's other bits when bit 1 is set, else up to its end
/// marker); a stream that decodes must have a parse that codes again, to a
/// stream that decodes to the same data and parse. Mode bit 0 set: byte 2
/// splits the rest into data and a parse; a pair that codes must decode
/// back to the data. Nothing may panic. Returns `None` when the input is
/// too short, else whether the decode or the coding was accepted.
pub fn lzma(input: &[u8]) -> Option<bool> {
    let (&[props_byte, mode], rest) = input.split_first_chunk::<2>()?;
    let props = Props::from_byte(props_byte % 225)?;
    if mode & 1 == 0 {
        let size = (mode & 2 != 0).then_some(u64::from(mode >> 2) * 61);
        let Ok(d) = lzma::decode(rest, props, size, MAX_DATA) else {
            return Some(false);
        };
        assert!(d.read <= rest.len());
        assert!(d.data.len() as u64 <= MAX_DATA);
        let coded = lzma::encode(&d.data, &d.parse, props).expect("a decoded parse codes again");
        let size = (!d.end_marker).then_some(d.data.len() as u64);
        let again = lzma::decode(&coded, props, size, MAX_DATA).expect("a coded stream decodes");
        assert_eq!(again.data, d.data);
        assert_eq!(again.parse, d.parse);
        assert_eq!(again.end_marker, d.end_marker);
        return Some(true);
    }
    let (&split, rest) = rest.split_first()?;
    let at = (usize::from(split) * rest.len() / 256).min(rest.len());
    let (data, parse) = rest.split_at(at);
    let Ok(coded) = lzma::encode(data, parse, props) else {
        return Some(false);
    };
    // The end marker, when coded, comes after all the data: a decoder that
    // knows the size stops before it.
    let size = Some(data.len() as u64);
    let back = lzma::decode(&coded, props, size, MAX_DATA).expect("a coded stream decodes");
    assert_eq!(back.data, data);
    Some(true)
}

/// The `deflate` target. Byte 0 picks the mode. Mode bit 0 clear: the rest
/// is a raw deflate stream; one that decodes must have a parse that codes
/// again to a stream decoding to the same data and parse. Mode bit 0 set:
/// byte 1 splits the rest into data and a parse; a pair that codes must
/// decode back to the data. Nothing may panic. Returns `None` when the
/// input is too short, else whether the decode or the coding was accepted.
pub fn deflate(input: &[u8]) -> Option<bool> {
    use fota_generator::streams::deflate;
    let (&mode, rest) = input.split_first()?;
    if mode & 1 == 0 {
        let Ok(d) = deflate::decode(rest, MAX_DATA) else {
            return Some(false);
        };
        assert!(d.read <= rest.len());
        let coded = deflate::encode(&d.data, &d.parse).expect("a decoded parse codes again");
        assert_eq!(
            coded,
            rest[..d.read],
            "a decoded stream codes back to itself"
        );
        let again = deflate::decode(&coded, MAX_DATA).expect("a coded stream decodes");
        assert_eq!(again.data, d.data);
        assert_eq!(again.parse, d.parse);
        return Some(true);
    }
    let (&split, rest) = rest.split_first()?;
    let at = (usize::from(split) * rest.len() / 256).min(rest.len());
    let (data, parse) = rest.split_at(at);
    let Ok(coded) = deflate::encode(data, parse) else {
        return Some(false);
    };
    let back = deflate::decode(&coded, MAX_DATA).expect("a coded stream decodes");
    assert_eq!(back.data, data);
    Some(true)
}

/// The `lzma2` target: as the decode half of [`lzma`] for an LZMA2 stream
/// (byte 0 clear), and as its coding half for a data / parse split (byte 0
/// set, byte 1 the split point).
pub fn lzma2(input: &[u8]) -> Option<bool> {
    let (&mode, rest) = input.split_first()?;
    if mode & 1 == 0 {
        let Ok(d) = lzma::decode2(rest, MAX_DATA) else {
            return Some(false);
        };
        assert!(d.read <= rest.len());
        let coded = lzma::encode2(&d.data, &d.parse).expect("a decoded parse codes again");
        let again = lzma::decode2(&coded, MAX_DATA).expect("a coded stream decodes");
        assert_eq!(again.data, d.data);
        assert_eq!(again.parse, d.parse);
        return Some(true);
    }
    let (&split, rest) = rest.split_first()?;
    let at = (usize::from(split) * rest.len() / 256).min(rest.len());
    let (data, parse) = rest.split_at(at);
    let Ok(coded) = lzma::encode2(data, parse) else {
        return Some(false);
    };
    let back = lzma::decode2(&coded, MAX_DATA).expect("a coded stream decodes");
    assert_eq!(back.data, data);
    Some(true)
}
