//! liblzma's raw LZMA encoder given a preset dictionary.
//!
//! A patch's literals are coded as if they followed the old image
//! (`fota_format::lzma::decode_after`). liblzma can start its match finder
//! on such a dictionary (`lzma_options_lzma.preset_dict`): it only indexes
//! those bytes, where coding them too and cutting their part of the parse
//! off would cost an optimal parse of the whole old image, and its prices
//! start from the fresh model the decoder starts from. The `xz2` crate does
//! not expose the option, so this module calls liblzma through `lzma-sys`
//! (the library `xz2` links).

// The calls into liblzma; each block says why it is sound.
#![allow(unsafe_code)]

use fota_format::lzma::Props;
use lzma_sys as sys;

use crate::error::{Error, Result};

/// liblzma preset whose settings the encoder starts from (6: bt4 match
/// finder, optimal parsing), as for every other stream.
const PRESET: u32 = 6;

fn failed(what: &str) -> Error {
    Error::Compress(std::io::Error::other(format!("liblzma: {what}")))
}

/// Frees a liblzma stream however the coding ends.
struct Stream(sys::lzma_stream);

impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: the stream was zero-initialised (LZMA_STREAM_INIT) and
        // only ever passed to liblzma, which frees what it allocated and
        // accepts a stream it never initialised.
        unsafe { sys::lzma_end(&mut self.0) }
    }
}

/// A raw LZMA stream of `data` with `props` and match length `nice`,
/// ended by an end marker, whose distances may reach into `dict`: the
/// encoder starts as if it had just coded `dict`, with positions counted
/// from `dict`'s start.
///
/// # Errors
/// [`Error::Compress`] when liblzma refuses the settings or fails (out of
/// memory), or the joined length passes 4 GiB.
pub fn encode(dict: &[u8], data: &[u8], props: Props, nice: u32) -> Result<Vec<u8>> {
    // The dictionary holds all of `dict` and `data`, so liblzma keeps the
    // whole preset (a longer one would lose its head, and with it the
    // position count) and every distance stays inside what was given.
    let joined = dict
        .len()
        .checked_add(data.len())
        .and_then(|n| u32::try_from(n.next_multiple_of(16).max(1 << 12)).ok())
        .ok_or_else(|| failed("a dictionary over 4 GiB"))?;
    let dict_len = u32::try_from(dict.len()).map_err(|_| failed("a dictionary over 4 GiB"))?;
    // SAFETY: lzma_options_lzma is plain data (integers and pointers, all
    // valid as zero); liblzma fills it for the preset.
    let mut options: sys::lzma_options_lzma = unsafe { std::mem::zeroed() };
    // SAFETY: `options` is a valid, writable lzma_options_lzma.
    if unsafe { sys::lzma_lzma_preset(&mut options, PRESET) } != 0 {
        return Err(failed("no preset 6"));
    }
    options.dict_size = joined;
    options.preset_dict = if dict.is_empty() {
        std::ptr::null()
    } else {
        dict.as_ptr()
    };
    options.preset_dict_size = dict_len;
    options.lc = props.lc;
    options.lp = props.lp;
    options.pb = props.pb;
    options.nice_len = nice;
    let filters = [
        sys::lzma_filter {
            id: sys::LZMA_FILTER_LZMA1,
            options: (&mut options as *mut sys::lzma_options_lzma).cast(),
        },
        sys::lzma_filter {
            id: sys::LZMA_VLI_UNKNOWN,
            options: std::ptr::null_mut(),
        },
    ];
    // SAFETY: an all-zero lzma_stream is LZMA_STREAM_INIT.
    let mut stream = Stream(unsafe { std::mem::zeroed() });
    // SAFETY: `filters` ends with LZMA_VLI_UNKNOWN and its options point
    // to `options`, which lives until this function returns; liblzma
    // copies the preset dictionary into its own buffer while it
    // initialises, and `dict` outlives the call anyway.
    let ret = unsafe { sys::lzma_raw_encoder(&mut stream.0, filters.as_ptr()) };
    if ret != sys::LZMA_OK {
        return Err(failed(&format!("raw encoder init returned {ret}")));
    }
    let mut out: Vec<u8> = Vec::with_capacity(data.len() / 2 + 64);
    stream.0.next_in = data.as_ptr();
    stream.0.avail_in = data.len();
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(4096));
        }
        let spare = out.capacity() - out.len();
        // SAFETY: `next_out` points at the `spare` unused bytes of `out`'s
        // allocation, and `next_in` at the rest of `data` (liblzma
        // advances both); `out` grows only between calls.
        let ret = unsafe {
            stream.0.next_out = out.as_mut_ptr().add(out.len());
            stream.0.avail_out = spare;
            sys::lzma_code(&mut stream.0, sys::LZMA_FINISH)
        };
        let written = spare - stream.0.avail_out;
        // SAFETY: liblzma initialised the `written` bytes after the old
        // length, all within the capacity.
        unsafe { out.set_len(out.len() + written) };
        match ret {
            sys::LZMA_STREAM_END => break,
            sys::LZMA_OK => {}
            other => return Err(failed(&format!("lzma_code returned {other}"))),
        }
    }
    drop(stream);
    if data.len() + dict.len() >= 1 << 20 {
        crate::memory::release_freed();
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn words(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                [
                    (x % 24) as u8,
                    [0xb5, 0xbd, 0x46, 0x68][(x >> 8) as usize % 4],
                ]
            })
            .collect()
    }

    #[test]
    fn settings_liblzma_refuses_are_an_error_not_a_stream() {
        let data = words(100, 3);
        // A nice length past LZMA's longest match, and a literal context
        // past what the format holds.
        let bad = [
            (Props::DEFAULT, 274),
            (
                Props {
                    lc: 5,
                    lp: 0,
                    pb: 2,
                },
                64,
            ),
        ];
        for (props, nice) in bad {
            match encode(&data[..50], &data, props, nice) {
                Err(Error::Compress(e)) => {
                    assert!(e.to_string().contains("raw encoder init"), "{e}")
                }
                Err(e) => panic!("unexpected error {e}"),
                Ok(_) => panic!("{props:?} at nice {nice} gave a stream"),
            }
        }
    }

    #[test]
    fn streams_decode_after_their_dictionary_with_the_formats_decoder() {
        let dict = words(5000, 7);
        let mut data = dict[3000..6000].to_vec();
        data.extend(words(500, 9));
        data.extend_from_slice(&dict[100..900]);
        for props in [
            Props::DEFAULT,
            Props {
                lc: 0,
                lp: 1,
                pb: 1,
            },
            Props {
                lc: 0,
                lp: 2,
                pb: 2,
            },
        ] {
            let coded = encode(&dict, &data, props, 64).unwrap();
            let mut out = Vec::new();
            // The end marker after the data is allowed and not read.
            fota_format::lzma::decode_after(&coded, props, &dict, data.len(), &mut out).unwrap();
            assert_eq!(out, data, "{props:?}");
            // The dictionary is what makes it small.
            let alone = encode(&[], &data, props, 64).unwrap();
            assert!(
                coded.len() * 3 < alone.len(),
                "{} vs {}",
                coded.len(),
                alone.len()
            );
        }
        // An odd-length dictionary keeps the position count.
        let odd = &dict[..dict.len() - 3];
        let props = Props {
            lc: 0,
            lp: 1,
            pb: 1,
        };
        let coded = encode(odd, &data, props, 273).unwrap();
        let mut out = Vec::new();
        fota_format::lzma::decode_after(&coded, props, odd, data.len(), &mut out).unwrap();
        assert_eq!(out, data);
    }
}
