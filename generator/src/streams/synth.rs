//! LZMA streams for tests, made by a small greedy parser and this crate's
//! coder: fixtures for crates that cannot link liblzma (the agent's
//! refusal tests, fuzz seeds).

use std::collections::HashMap;

use super::lzma::{self, Props};
use super::put_varint;

/// `data` as an "LZMA alone" file (props 0x5d, a dictionary as large as the data, size in
/// the header, no end marker), as EDK2 writes its LZMA sections.
pub fn lzma_alone(data: &[u8]) -> Vec<u8> {
    let mut parse = Vec::new();
    let mut last: HashMap<[u8; 4], usize> = HashMap::new();
    let mut literals = 0u64;
    let flush = |parse: &mut Vec<u8>, literals: &mut u64| {
        if *literals > 0 {
            parse.push(0);
            put_varint(parse, *literals - 1);
            *literals = 0;
        }
    };
    let mut pos = 0;
    while pos < data.len() {
        let key = data.get(pos..pos + 4).map(|k| [k[0], k[1], k[2], k[3]]);
        let found = key.and_then(|k| last.insert(k, pos));
        let len = found.map_or(0, |from| {
            data[pos..]
                .iter()
                .zip(&data[from..])
                .take(273)
                .take_while(|(a, b)| a == b)
                .count()
        });
        match found {
            Some(from) if len >= 4 => {
                flush(&mut parse, &mut literals);
                parse.push(6);
                put_varint(&mut parse, len as u64 - 2);
                parse.extend_from_slice(&((pos - from - 1) as u32).to_le_bytes());
                pos += len;
            }
            _ => {
                literals += 1;
                pos += 1;
            }
        }
    }
    flush(&mut parse, &mut literals);
    let props = Props::from_byte(0x5d).expect("0x5d is a valid props byte");
    let body = lzma::encode(data, &parse, props).expect("the greedy parse matches its data");
    // A dictionary as large as the data, so every match is inside it.
    let dict = data.len().next_power_of_two().max(4096) as u32;
    let mut out = vec![0x5d];
    out.extend_from_slice(&dict.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Old and new firmware-like images, each holding an LZMA stream of
/// `len` bytes of data; the new data has a few bytes changed and a few
/// inserted, as a rebuilt firmware volume has.
pub fn stream_pair(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let data = firmware_like(len, seed);
    let mut changed = data.clone();
    let mid = len / 2;
    if len > 64 {
        changed[mid..mid + 8].copy_from_slice(b"changed!");
        changed.splice(len / 5..len / 5, b"inserted".iter().copied());
    }
    let image = |d: &[u8], tail: u8| {
        let mut v = firmware_like(4096, seed ^ 0x55);
        v.extend_from_slice(&lzma_alone(d));
        v.extend(std::iter::repeat_n(tail, 1000));
        v
    };
    (image(&data, 1), image(&changed, 2))
}

/// Firmware-like bytes: 24-bit records with repeats of earlier runs, as
/// code and tables have; the same for the same `seed`.
pub fn firmware_like(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let r = next();
        if r % 3 == 0 && out.len() > 64 {
            let back = 1 + (r >> 8) as usize % out.len().min(4000);
            for _ in 0..4 + (r >> 24) as usize % 60 {
                out.push(out[out.len() - back]);
            }
        } else {
            out.extend_from_slice(&(r as u32 & 0x00ff_ffff).to_le_bytes());
        }
    }
    out.truncate(len);
    out
}
