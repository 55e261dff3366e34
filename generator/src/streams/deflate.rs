//! Deflate (RFC 1951) split into data and parse, and coded back bit-exactly.
//!
//! As for LZMA ([`super::lzma`]), [`decode`] records beside the data every
//! choice the compressor made: block kinds and boundaries, each dynamic
//! block's code-length description exactly as sent, the literal/match
//! tokens, stored blocks' padding bits and the last byte's spare bits.
//! Huffman codes are canonical, so [`encode`] rebuilds the same bits from
//! those choices whatever compressor (zlib at any level, zopfli, 7-Zip)
//! made them, with no window and no match search.
//!
//! ```text
//! 0x10 final        stored block: u8 padding bits, u16le LEN; its LEN bytes are data
//! 0x11 final        fixed-code block
//! 0x12 final        dynamic block: u8 HLIT-257, u8 HDIST-1, u8 HCLEN-4,
//!                   HCLEN+4 bytes of code-length-code lengths, then the code-length
//!                   symbols (a byte each; 16, 17, 18 followed by their extra-bits value)
//! 0x00 varint(n-1)  n literals (their bytes are in the data)
//! 0x06 varint(len-3) varint(dist-1)   match
//! 0x07              end of block
//! 0x08 u8           after the last block: the last byte's spare bits
//! ```

use super::lzma::Decoded;
use super::{put_varint, CodecError, ParseReader};

type Result<T> = std::result::Result<T, CodecError>;

const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// Order in which code-length-code lengths are sent.
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
const MAX_BITS: usize = 15;

const TOKEN_LITERALS: u8 = 0;
const TOKEN_MATCH: u8 = 6;
const TOKEN_END_BLOCK: u8 = 7;
const TOKEN_TAIL: u8 = 8;
const TOKEN_STORED: u8 = 0x10;
const TOKEN_FIXED: u8 = 0x11;
const TOKEN_DYNAMIC: u8 = 0x12;

/// Code lengths of the fixed literal/length and distance codes.
fn fixed_lengths() -> (Vec<u8>, Vec<u8>) {
    let mut lit = vec![8u8; 288];
    lit[144..256].fill(9);
    lit[256..280].fill(7);
    (lit, vec![5u8; 30])
}

/// A canonical Huffman code, for decoding (counts per length, symbols in
/// code order) and encoding (code and length per symbol).
struct Huffman {
    count: [u16; MAX_BITS + 1],
    symbol: Vec<u16>,
    code: Vec<(u16, u8)>,
}

impl Huffman {
    /// The code of `lengths`; `None` when oversubscribed.
    fn new(lengths: &[u8]) -> Option<Huffman> {
        let mut count = [0u16; MAX_BITS + 1];
        for &l in lengths {
            count[usize::from(l)] += 1;
        }
        count[0] = 0;
        let mut left = 1i32;
        for &c in &count[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return None;
            }
        }
        let mut offs = [0u16; MAX_BITS + 2];
        for len in 1..=MAX_BITS {
            offs[len + 1] = offs[len] + count[len];
        }
        let mut symbol = vec![0u16; usize::from(offs[MAX_BITS + 1])];
        for (sym, &l) in lengths.iter().enumerate() {
            if l != 0 {
                symbol[usize::from(offs[usize::from(l)])] = sym as u16;
                offs[usize::from(l)] += 1;
            }
        }
        let mut next = [0u16; MAX_BITS + 1];
        let mut c = 0u16;
        for len in 1..=MAX_BITS {
            c = (c + count[len - 1]) << 1;
            next[len] = c;
        }
        let code = lengths
            .iter()
            .map(|&l| {
                if l == 0 {
                    return (0, 0);
                }
                let v = next[usize::from(l)];
                next[usize::from(l)] += 1;
                (v, l)
            })
            .collect();
        Some(Huffman {
            count,
            symbol,
            code,
        })
    }
}

struct BitReader<'a> {
    input: &'a [u8],
    pos: usize,
    bit: u32,
}

impl BitReader<'_> {
    fn error(&self, what: &'static str) -> CodecError {
        CodecError {
            offset: self.pos as u64,
            what,
        }
    }

    fn bits(&mut self, n: u32) -> Result<u32> {
        let mut v = 0;
        for i in 0..n {
            let byte = *self
                .input
                .get(self.pos)
                .ok_or(self.error("more compressed bytes (the stream is cut short)"))?;
            v |= u32::from((byte >> self.bit) & 1) << i;
            self.bit += 1;
            if self.bit == 8 {
                self.bit = 0;
                self.pos += 1;
            }
        }
        Ok(v)
    }

    fn decode(&mut self, h: &Huffman) -> Result<u16> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_BITS {
            code |= self.bits(1)? as i32;
            let count = i32::from(h.count[len]);
            if code - first < count {
                return Ok(h.symbol[(index + code - first) as usize]);
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        Err(self.error("a code of the block's Huffman code"))
    }
}

/// Decodes one raw deflate stream from the start of `input`, up to and
/// including its final block; `max_data` bounds the output.
///
/// # Errors
/// A malformed or cut-short stream, a distance before the start of the
/// data, a length-258 match sent as code 284, or more than `max_data` bytes.
pub fn decode(input: &[u8], max_data: u64) -> Result<Decoded> {
    let mut r = BitReader {
        input,
        pos: 0,
        bit: 0,
    };
    let mut data: Vec<u8> = Vec::new();
    let mut parse = Vec::new();
    let mut literals = 0u64;
    let flush = |parse: &mut Vec<u8>, literals: &mut u64| {
        if *literals > 0 {
            parse.push(TOKEN_LITERALS);
            put_varint(parse, *literals - 1);
            *literals = 0;
        }
    };
    loop {
        let last = r.bits(1)?;
        let kind = r.bits(2)?;
        let (lit, dist) = match kind {
            0 => {
                let pad = (8 - r.bit) % 8;
                let pad_value = r.bits(pad)?;
                let len = r.bits(16)?;
                let nlen = r.bits(16)?;
                if len != !nlen & 0xffff {
                    return Err(r.error("a stored block's NLEN, the complement of LEN"));
                }
                let bytes = input
                    .get(r.pos..r.pos + len as usize)
                    .ok_or(r.error("a stored block's bytes"))?;
                if data.len() as u64 + u64::from(len) > max_data {
                    return Err(r.error("data within the size limit"));
                }
                r.pos += len as usize;
                data.extend_from_slice(bytes);
                parse.extend_from_slice(&[TOKEN_STORED, last as u8, pad_value as u8]);
                parse.extend_from_slice(&(len as u16).to_le_bytes());
                if last == 1 {
                    break;
                }
                continue;
            }
            1 => {
                parse.extend_from_slice(&[TOKEN_FIXED, last as u8]);
                let (l, d) = fixed_lengths();
                (Huffman::new(&l), Huffman::new(&d))
            }
            2 => {
                parse.extend_from_slice(&[TOKEN_DYNAMIC, last as u8]);
                let (l, d) = read_dynamic(&mut r, &mut parse)?;
                (Huffman::new(&l), Huffman::new(&d))
            }
            _ => return Err(r.error("a block type of 0, 1 or 2")),
        };
        let (Some(lit), Some(dist)) = (lit, dist) else {
            return Err(r.error("a Huffman code that is not oversubscribed"));
        };
        loop {
            let sym = r.decode(&lit)?;
            if sym < 256 {
                if data.len() as u64 >= max_data {
                    return Err(r.error("data within the size limit"));
                }
                data.push(sym as u8);
                literals += 1;
                continue;
            }
            if sym == 256 {
                flush(&mut parse, &mut literals);
                parse.push(TOKEN_END_BLOCK);
                break;
            }
            let i = usize::from(sym - 257);
            if i >= 29 {
                return Err(r.error("a length code of 257 to 285"));
            }
            let len = usize::from(LEN_BASE[i]) + r.bits(u32::from(LEN_EXTRA[i]))? as usize;
            if len > 258 || (len == 258 && i != 28) {
                return Err(r.error("a length of 3 to 258, 258 sent as code 285"));
            }
            let d = usize::from(r.decode(&dist)?);
            if d >= 30 {
                return Err(r.error("a distance code of 0 to 29"));
            }
            let distance = usize::from(DIST_BASE[d]) + r.bits(u32::from(DIST_EXTRA[d]))? as usize;
            if distance > data.len() {
                return Err(r.error("a distance inside the data so far"));
            }
            if (data.len() + len) as u64 > max_data {
                return Err(r.error("data within the size limit"));
            }
            let from = data.len() - distance;
            for k in 0..len {
                let b = data[from + k];
                data.push(b);
            }
            flush(&mut parse, &mut literals);
            parse.push(TOKEN_MATCH);
            put_varint(&mut parse, len as u64 - 3);
            put_varint(&mut parse, distance as u64 - 1);
        }
        if last == 1 {
            break;
        }
    }
    let spare = (8 - r.bit) % 8;
    let tail = r.bits(spare)?;
    parse.extend_from_slice(&[TOKEN_TAIL, tail as u8]);
    Ok(Decoded {
        data,
        parse,
        end_marker: false,
        read: r.pos,
    })
}

/// Reads a dynamic block's code description, recording it in `parse`.
fn read_dynamic(r: &mut BitReader<'_>, parse: &mut Vec<u8>) -> Result<(Vec<u8>, Vec<u8>)> {
    let hlit = r.bits(5)? as usize + 257;
    let hdist = r.bits(5)? as usize + 1;
    let hclen = r.bits(4)? as usize + 4;
    parse.extend_from_slice(&[(hlit - 257) as u8, (hdist - 1) as u8, (hclen - 4) as u8]);
    let mut cl = [0u8; 19];
    for &i in &CL_ORDER[..hclen] {
        cl[i] = r.bits(3)? as u8;
        parse.push(cl[i]);
    }
    let cl_code =
        Huffman::new(&cl).ok_or(r.error("a code-length code that is not oversubscribed"))?;
    let mut lengths = Vec::with_capacity(hlit + hdist);
    while lengths.len() < hlit + hdist {
        let sym = r.decode(&cl_code)?;
        parse.push(sym as u8);
        let (value, times) = match sym {
            0..=15 => (sym as u8, 1),
            16 => {
                let prev = *lengths.last().ok_or(r.error("a length to repeat"))?;
                let extra = r.bits(2)?;
                parse.push(extra as u8);
                (prev, 3 + extra as usize)
            }
            17 => {
                let extra = r.bits(3)?;
                parse.push(extra as u8);
                (0, 3 + extra as usize)
            }
            _ => {
                let extra = r.bits(7)?;
                parse.push(extra as u8);
                (0, 11 + extra as usize)
            }
        };
        if lengths.len() + times > hlit + hdist {
            return Err(r.error("code lengths that fit HLIT + HDIST"));
        }
        lengths.extend(std::iter::repeat_n(value, times));
    }
    let dist = lengths.split_off(hlit);
    if lengths[256] == 0 {
        return Err(r.error("a code for the end of block"));
    }
    Ok((lengths, dist))
}

struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u32, bits: u32) {
        self.acc |= u64::from(value) << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn put_code(&mut self, (code, len): (u16, u8)) {
        for i in (0..u32::from(len)).rev() {
            self.put(u32::from(code >> i) & 1, 1);
        }
    }
}

/// Codes `data` as the deflate stream `parse` describes.
///
/// # Errors
/// A parse that is malformed, uses a symbol its block's code lacks, does not
/// cover `data` exactly, or copies bytes that differ from the data.
pub fn encode(data: &[u8], parse: &[u8]) -> Result<Vec<u8>> {
    let mut w = BitWriter {
        out: Vec::with_capacity(data.len() / 2),
        acc: 0,
        n: 0,
    };
    let mut r = ParseReader { parse, pos: 0 };
    let mut pos = 0usize;
    loop {
        let tag = r.byte("a block header")?;
        let last = r.byte("a block's final flag")?;
        if last > 1 {
            return Err(r.error("a final flag of 0 or 1"));
        }
        w.put(u32::from(last), 1);
        let (lit, dist) = match tag {
            TOKEN_STORED => {
                w.put(0, 2);
                let pad = (8 - w.n) % 8;
                let pad_value = r.byte("stored padding bits")?;
                if u32::from(pad_value) >> pad != 0 {
                    return Err(r.error("padding bits that fit before the byte boundary"));
                }
                w.put(u32::from(pad_value), pad);
                let len = u16::from_le_bytes([r.byte("LEN")?, r.byte("LEN")?]);
                let bytes = data
                    .get(pos..pos + usize::from(len))
                    .ok_or(r.error("a stored block inside the data"))?;
                w.put(u32::from(len), 16);
                w.put(u32::from(!len), 16);
                w.out.extend_from_slice(bytes);
                pos += usize::from(len);
                if last == 1 {
                    break;
                }
                continue;
            }
            TOKEN_FIXED => {
                w.put(1, 2);
                let (l, d) = fixed_lengths();
                (Huffman::new(&l), Huffman::new(&d))
            }
            TOKEN_DYNAMIC => {
                w.put(2, 2);
                let (l, d) = write_dynamic(&mut r, &mut w)?;
                (Huffman::new(&l), Huffman::new(&d))
            }
            _ => return Err(r.error("a block header token 0x10, 0x11 or 0x12")),
        };
        let (Some(lit), Some(dist)) = (lit, dist) else {
            return Err(r.error("a Huffman code that is not oversubscribed"));
        };
        let symbol = |h: &Huffman, sym: usize, r: &ParseReader<'_>| match h.code.get(sym) {
            Some(&c) if c.1 > 0 => Ok(c),
            _ => Err(r.error("a symbol the block's code has")),
        };
        loop {
            match r.byte("a token")? {
                TOKEN_LITERALS => {
                    let n = r.varint("a literal count")?.saturating_add(1);
                    if n > (data.len() - pos) as u64 {
                        return Err(r.error("literals within the data"));
                    }
                    for &b in &data[pos..pos + n as usize] {
                        w.put_code(symbol(&lit, usize::from(b), &r)?);
                    }
                    pos += n as usize;
                }
                TOKEN_MATCH => {
                    let len = r.varint("a match length")?.saturating_add(3);
                    let distance = r.varint("a match distance")?.saturating_add(1);
                    if len > 258 || distance > 32768 {
                        return Err(r.error("a length of 3 to 258 and a distance of 1 to 32768"));
                    }
                    let (len, distance) = (len as usize, distance as usize);
                    if distance > pos || len > data.len() - pos {
                        return Err(r.error("a match inside the data"));
                    }
                    if data[pos..pos + len]
                        .iter()
                        .zip(&data[pos - distance..])
                        .any(|(a, b)| a != b)
                    {
                        return Err(r.error("a match whose bytes equal the data"));
                    }
                    let i = LEN_BASE
                        .iter()
                        .rposition(|&b| usize::from(b) <= len)
                        .unwrap_or(0);
                    w.put_code(symbol(&lit, 257 + i, &r)?);
                    w.put(
                        (len - usize::from(LEN_BASE[i])) as u32,
                        u32::from(LEN_EXTRA[i]),
                    );
                    let d = DIST_BASE
                        .iter()
                        .rposition(|&b| usize::from(b) <= distance)
                        .unwrap_or(0);
                    w.put_code(symbol(&dist, d, &r)?);
                    w.put(
                        (distance - usize::from(DIST_BASE[d])) as u32,
                        u32::from(DIST_EXTRA[d]),
                    );
                    pos += len;
                }
                TOKEN_END_BLOCK => {
                    w.put_code(symbol(&lit, 256, &r)?);
                    break;
                }
                _ => return Err(r.error("a token 0x00, 0x06 or 0x07")),
            }
        }
        if last == 1 {
            break;
        }
    }
    if r.byte("the tail token")? != TOKEN_TAIL {
        return Err(r.error("the tail token 0x08"));
    }
    let spare = (8 - w.n) % 8;
    let tail = r.byte("the last byte's spare bits")?;
    if u32::from(tail) >> spare != 0 {
        return Err(r.error("spare bits that fit the last byte"));
    }
    w.put(u32::from(tail), spare);
    if r.pos != parse.len() || pos != data.len() {
        return Err(r.error("a parse that ends with the stream and covers all the data"));
    }
    Ok(w.out)
}

/// Writes a dynamic block's code description from the parse; returns the
/// literal/length and distance code lengths.
fn write_dynamic(r: &mut ParseReader<'_>, w: &mut BitWriter) -> Result<(Vec<u8>, Vec<u8>)> {
    let hlit = usize::from(r.byte("HLIT")?);
    let hdist = usize::from(r.byte("HDIST")?);
    let hclen = usize::from(r.byte("HCLEN")?);
    if hlit > 31 || hdist > 31 || hclen > 15 {
        return Err(r.error("HLIT, HDIST below 32 and HCLEN below 16"));
    }
    w.put(hlit as u32, 5);
    w.put(hdist as u32, 5);
    w.put(hclen as u32, 4);
    let (hlit, hdist, hclen) = (hlit + 257, hdist + 1, hclen + 4);
    let mut cl = [0u8; 19];
    for &i in &CL_ORDER[..hclen] {
        cl[i] = r.byte("a code-length-code length")?;
        if cl[i] > 7 {
            return Err(r.error("a code-length-code length below 8"));
        }
        w.put(u32::from(cl[i]), 3);
    }
    let cl_code =
        Huffman::new(&cl).ok_or(r.error("a code-length code that is not oversubscribed"))?;
    let mut lengths = Vec::with_capacity(hlit + hdist);
    while lengths.len() < hlit + hdist {
        let sym = r.byte("a code-length symbol")?;
        let code = match cl_code.code.get(usize::from(sym)) {
            Some(&c) if c.1 > 0 => c,
            _ => return Err(r.error("a code-length symbol the code has")),
        };
        w.put_code(code);
        let (value, times) = match sym {
            0..=15 => (sym, 1),
            16 => {
                let prev = *lengths.last().ok_or(r.error("a length to repeat"))?;
                let extra = r.byte("a repeat count")?;
                if extra > 3 {
                    return Err(r.error("a repeat count below 4"));
                }
                w.put(u32::from(extra), 2);
                (prev, 3 + usize::from(extra))
            }
            17 => {
                let extra = r.byte("a zero-run count")?;
                if extra > 7 {
                    return Err(r.error("a zero-run count below 8"));
                }
                w.put(u32::from(extra), 3);
                (0, 3 + usize::from(extra))
            }
            _ => {
                let extra = r.byte("a zero-run count")?;
                if extra > 127 {
                    return Err(r.error("a zero-run count below 128"));
                }
                w.put(u32::from(extra), 7);
                (0, 11 + usize::from(extra))
            }
        };
        if lengths.len() + times > hlit + hdist {
            return Err(r.error("code lengths that fit HLIT + HDIST"));
        }
        lengths.extend(std::iter::repeat_n(value, times));
    }
    let dist = lengths.split_off(hlit);
    Ok((lengths, dist))
}
