//! Decoding a `zstd` payload (feature `zstd`): the one rule every
//! applier shares, so the generator's self-check and the agent refuse
//! exactly the same payloads.

use std::vec::Vec;

use crate::error::{Error, Result};

/// First bytes of a standard zstd frame (RFC 8878 §3.1.1).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Decodes op `op_index`'s zstd payload to at most `decoded_len` bytes.
///
/// The payload must be exactly one standard frame: no skippable or
/// concatenated frames, which a strict streaming decoder on a device
/// would refuse. The caller checks the decoded length against the
/// header's.
///
/// # Errors
/// [`Error::PayloadCodec`] when the payload is not one frame, is corrupt
/// or decodes to more than `decoded_len` bytes.
pub fn decode(op_index: u32, coded: &[u8], decoded_len: usize) -> Result<Vec<u8>> {
    let err = |what| Error::PayloadCodec { op_index, what };
    let one_frame = coded.starts_with(&ZSTD_MAGIC)
        && zstd::zstd_safe::find_frame_compressed_size(coded) == Ok(coded.len());
    if !one_frame {
        return Err(err("payload is not exactly one zstd frame"));
    }
    zstd::bulk::decompress(coded, decoded_len)
        .map_err(|_| err("zstd frame is corrupt or decodes to more than the declared length"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn one_frame_decodes_and_anything_else_is_refused() {
        let data = [7u8; 1000];
        let frame = zstd::bulk::compress(&data, 3).unwrap();
        assert_eq!(decode(0, &frame, 1000).unwrap(), data);
        // Two frames back to back.
        let two = [frame.clone(), frame.clone()].concat();
        assert!(matches!(
            decode(1, &two, 2000),
            Err(Error::PayloadCodec { op_index: 1, .. })
        ));
        // A skippable frame first.
        let mut skippable = std::vec![0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];
        skippable.extend_from_slice(&frame);
        assert!(decode(2, &skippable, 1000).is_err());
        // Truncated, and more output than declared.
        assert!(decode(3, &frame[..frame.len() - 1], 1000).is_err());
        assert!(decode(4, &frame, 999).is_err());
    }
}
