//! LZMA split into data and parse, and coded back bit-exactly.
//!
//! [`decode`] runs a plain LZMA decoder and records, beside the data, every
//! decision the encoder made (the *parse*): literal runs, matches with
//! their distance, repeats of the last four distances, short repeats, the
//! end marker. [`encode`] codes a data + parse pair again with the same
//! probability model and range coder. Since the range coder is a
//! deterministic function of the decisions, a stream made by any LZMA
//! encoder (LZMA SDK, liblzma, EDK2's tools) comes out byte for byte, with
//! no need for that encoder's match finder or settings.
//!
//! The parse is a byte stream meant to diff well against an older one:
//!
//! ```text
//! 0x00 varint(n - 1)               n literals (their bytes are in the data)
//! 0x01                             short repeat (one byte at the last distance)
//! 0x02 + i varint(len - 2)         repeat of distance i of the last four (i < 4)
//! 0x06 varint(len - 2) dist u32le  match at distance dist + 1
//! 0x07                             end-of-stream marker (last token)
//! ```
//!
//! LZMA2 (the chunked form inside `.xz` files, [`decode2`], [`encode2`])
//! adds chunk tokens; the symbols of an LZMA chunk follow its token:
//!
//! ```text
//! 0x20 reset u32le(unpacked) [props]   LZMA chunk: reset 0 none, 1 state,
//!                                      2 state + props (props byte follows), 3 also dictionary
//! 0x21 control u16le(size - 1)         stored chunk (control 1 resets the dictionary, 2 not)
//! 0x22                                 end of the LZMA2 stream
//! ```

use super::{put_varint, CodecError, ParseReader};

/// Probabilities are 11-bit, adapted by 1/32 of their distance.
const BIT_MODEL_TOTAL: u32 = 1 << 11;
const MOVE_BITS: u32 = 5;
const TOP: u32 = 1 << 24;
const STATES: usize = 12;
const POS_STATES_MAX: usize = 1 << 4;
const LEN_TO_POS_STATES: usize = 4;
const END_POS_MODEL_INDEX: u32 = 14;
const FULL_DISTANCES: u32 = 128;
const ALIGN_BITS: u32 = 4;
const MATCH_LEN_MIN: usize = 2;
const MATCH_LEN_MAX: usize = 273;
/// The distance value of the end-of-stream marker.
const END_MARKER: u32 = u32::MAX;

const TOKEN_LITERALS: u8 = 0;
const TOKEN_SHORT_REP: u8 = 1;
const TOKEN_REP0: u8 = 2;
const TOKEN_MATCH: u8 = 6;
const TOKEN_END: u8 = 7;
const TOKEN_LZMA2_CHUNK: u8 = 0x20;
const TOKEN_LZMA2_STORED: u8 = 0x21;
const TOKEN_LZMA2_END: u8 = 0x22;

type Result<T> = std::result::Result<T, CodecError>;

/// The lc/lp/pb parameters of a props byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Props {
    lc: u32,
    lp: u32,
    pb: u32,
}

impl Props {
    /// The parameters of `byte` ((pb * 5 + lp) * 9 + lc), if below 225.
    pub fn from_byte(byte: u8) -> Option<Props> {
        let b = u32::from(byte);
        (b < 225).then_some(Props {
            lc: b % 9,
            lp: b / 9 % 5,
            pb: b / 45,
        })
    }
}

/// A decoded stream: its data, its parse and its compressed length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The uncompressed bytes.
    pub data: Vec<u8>,
    /// The encoder's decisions (see the module documentation).
    pub parse: Vec<u8>,
    /// Whether the stream ends with the end-of-stream marker.
    pub end_marker: bool,
    /// Compressed bytes the decoder read (the encoder's flush may add a
    /// few more, see [`encode`]).
    pub read: usize,
}

/// The adaptive probability model shared by both directions.
struct Model {
    literal: Vec<u16>,
    is_match: [u16; STATES * POS_STATES_MAX],
    is_rep: [u16; STATES],
    is_rep_g0: [u16; STATES],
    is_rep_g1: [u16; STATES],
    is_rep_g2: [u16; STATES],
    is_rep0_long: [u16; STATES * POS_STATES_MAX],
    pos_slot: [[u16; 64]; LEN_TO_POS_STATES],
    pos_special: [u16; 1 + (FULL_DISTANCES - END_POS_MODEL_INDEX) as usize],
    align: [u16; 1 << ALIGN_BITS],
    match_len: LenModel,
    rep_len: LenModel,
    props: Props,
    state: usize,
    reps: [u32; 4],
}

struct LenModel {
    choice: u16,
    choice2: u16,
    low: [[u16; 8]; POS_STATES_MAX],
    mid: [[u16; 8]; POS_STATES_MAX],
    high: [u16; 256],
}

const HALF: u16 = (BIT_MODEL_TOTAL / 2) as u16;

impl LenModel {
    fn new() -> Self {
        LenModel {
            choice: HALF,
            choice2: HALF,
            low: [[HALF; 8]; POS_STATES_MAX],
            mid: [[HALF; 8]; POS_STATES_MAX],
            high: [HALF; 256],
        }
    }
}

impl Model {
    fn new(props: Props) -> Self {
        Model {
            literal: vec![HALF; 0x300 << (props.lc + props.lp)],
            is_match: [HALF; STATES * POS_STATES_MAX],
            is_rep: [HALF; STATES],
            is_rep_g0: [HALF; STATES],
            is_rep_g1: [HALF; STATES],
            is_rep_g2: [HALF; STATES],
            is_rep0_long: [HALF; STATES * POS_STATES_MAX],
            pos_slot: [[HALF; 64]; LEN_TO_POS_STATES],
            pos_special: [HALF; 1 + (FULL_DISTANCES - END_POS_MODEL_INDEX) as usize],
            align: [HALF; 1 << ALIGN_BITS],
            match_len: LenModel::new(),
            rep_len: LenModel::new(),
            props,
            state: 0,
            reps: [0; 4],
        }
    }

    fn pos_state(&self, pos: usize) -> usize {
        pos & ((1 << self.props.pb) - 1)
    }

    /// First probability of the literal coder for position `pos`.
    fn literal_base(&self, pos: usize, prev: u8) -> usize {
        let lp_mask = (1usize << self.props.lp) - 1;
        let ctx = ((pos & lp_mask) << self.props.lc) + (usize::from(prev) >> (8 - self.props.lc));
        0x300 * ctx
    }

    fn after_literal(&mut self) {
        self.state = match self.state {
            0..=3 => 0,
            4..=9 => self.state - 3,
            _ => self.state - 6,
        };
    }

    fn after(&mut self, literal_state: usize, other: usize) {
        self.state = if self.state < 7 { literal_state } else { other };
    }
}

/// The distance slot of a distance value.
fn pos_slot(dist: u32) -> u32 {
    if dist < 4 {
        return dist;
    }
    let top = 31 - dist.leading_zeros();
    (top << 1) | ((dist >> (top - 1)) & 1)
}

// ---------------------------------------------------------------- decoding

struct RangeDecoder<'a> {
    input: &'a [u8],
    pos: usize,
    range: u32,
    code: u32,
}

impl<'a> RangeDecoder<'a> {
    fn new(input: &'a [u8]) -> Result<Self> {
        let head = input.get(..5).ok_or(CodecError {
            offset: input.len() as u64,
            what: "5 bytes of range coder start",
        })?;
        if head[0] != 0 {
            return Err(CodecError {
                offset: 0,
                what: "range coder start byte 0",
            });
        }
        let code = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
        if code == u32::MAX {
            return Err(CodecError {
                offset: 1,
                what: "range coder start value below 0xffffffff",
            });
        }
        Ok(RangeDecoder {
            input,
            pos: 5,
            range: u32::MAX,
            code,
        })
    }

    fn normalize(&mut self) -> Result<()> {
        if self.range < TOP {
            let byte = *self.input.get(self.pos).ok_or(CodecError {
                offset: self.pos as u64,
                what: "more compressed bytes (the stream is cut short)",
            })?;
            self.pos += 1;
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(byte);
        }
        Ok(())
    }

    fn bit(&mut self, prob: &mut u16) -> Result<u32> {
        let bound = (self.range >> 11) * u32::from(*prob);
        let bit = if self.code < bound {
            self.range = bound;
            *prob += ((BIT_MODEL_TOTAL - u32::from(*prob)) >> MOVE_BITS) as u16;
            0
        } else {
            self.range -= bound;
            self.code -= bound;
            *prob -= *prob >> MOVE_BITS;
            1
        };
        self.normalize()?;
        Ok(bit)
    }

    fn direct(&mut self, count: u32) -> Result<u32> {
        let mut v = 0;
        for _ in 0..count {
            self.range >>= 1;
            let bit = u32::from(self.code >= self.range);
            if bit == 1 {
                self.code -= self.range;
            }
            v = (v << 1) | bit;
            self.normalize()?;
        }
        Ok(v)
    }

    fn tree(&mut self, probs: &mut [u16], bits: u32) -> Result<u32> {
        let mut m = 1usize;
        for _ in 0..bits {
            m = (m << 1) | self.bit(&mut probs[m])? as usize;
        }
        Ok(m as u32 - (1 << bits))
    }

    fn reverse_tree(&mut self, probs: &mut [u16], base: usize, bits: u32) -> Result<u32> {
        let (mut m, mut v) = (1usize, 0u32);
        for i in 0..bits {
            let bit = self.bit(&mut probs[base + m])?;
            m = (m << 1) | bit as usize;
            v |= bit << i;
        }
        Ok(v)
    }

    fn len(&mut self, l: &mut LenModel, pos_state: usize) -> Result<usize> {
        let v = if self.bit(&mut l.choice)? == 0 {
            self.tree(&mut l.low[pos_state], 3)?
        } else if self.bit(&mut l.choice2)? == 0 {
            8 + self.tree(&mut l.mid[pos_state], 3)?
        } else {
            16 + self.tree(&mut l.high, 8)?
        };
        Ok(v as usize + MATCH_LEN_MIN)
    }

    fn distance(&mut self, m: &mut Model, len: usize) -> Result<u32> {
        let len_state = (len - MATCH_LEN_MIN).min(LEN_TO_POS_STATES - 1);
        let slot = self.tree(&mut m.pos_slot[len_state], 6)?;
        if slot < 4 {
            return Ok(slot);
        }
        let direct = (slot >> 1) - 1;
        let mut dist = (2 | (slot & 1)) << direct;
        if slot < END_POS_MODEL_INDEX {
            let base = (dist - slot) as usize;
            dist += self.reverse_tree(&mut m.pos_special, base, direct)?;
        } else {
            dist += self.direct(direct - ALIGN_BITS)? << ALIGN_BITS;
            dist += self.reverse_tree(&mut m.align, 0, ALIGN_BITS)?;
        }
        Ok(dist)
    }
}

/// Records literal runs lazily, so a run is one token.
struct ParseWriter {
    parse: Vec<u8>,
    literals: u64,
}

impl ParseWriter {
    fn flush(&mut self) {
        if self.literals > 0 {
            self.parse.push(TOKEN_LITERALS);
            put_varint(&mut self.parse, self.literals - 1);
            self.literals = 0;
        }
    }

    fn token(&mut self, tag: u8) {
        self.flush();
        self.parse.push(tag);
    }
}

/// Decodes a raw LZMA stream (no 13-byte header) with parameters `props`,
/// producing `size` bytes, or up to the end marker when `size` is `None`.
/// `max_data` bounds the output whatever the stream says.
///
/// # Errors
/// A corrupt or cut-short stream, a distance before the start of the data,
/// or more than `max_data` bytes.
pub fn decode(input: &[u8], props: Props, size: Option<u64>, max_data: u64) -> Result<Decoded> {
    let limit = size.unwrap_or(u64::MAX).min(max_data);
    let mut rc = RangeDecoder::new(input)?;
    let mut m = Model::new(props);
    let mut data: Vec<u8> = Vec::with_capacity(size.unwrap_or(0).min(max_data) as usize);
    let mut w = ParseWriter {
        parse: Vec::new(),
        literals: 0,
    };
    let end_marker = symbols(&mut rc, &mut m, &mut data, &mut w, size, limit)?;
    w.flush();
    Ok(Decoded {
        data,
        parse: w.parse,
        end_marker,
        read: rc.pos,
    })
}

/// Decodes symbols into `data` until it holds `size` bytes or, when
/// `size` is `None`, up to the end marker; returns whether the marker came.
fn symbols(
    rc: &mut RangeDecoder<'_>,
    m: &mut Model,
    data: &mut Vec<u8>,
    w: &mut ParseWriter,
    size: Option<u64>,
    limit: u64,
) -> Result<bool> {
    let corrupt = |rc: &RangeDecoder<'_>, what| CodecError {
        offset: rc.pos as u64,
        what,
    };
    while size.is_none_or(|s| (data.len() as u64) < s) {
        let pos = data.len();
        let room = (pos as u64) < limit;
        let ps = m.pos_state(pos);
        if rc.bit(&mut m.is_match[(m.state << 4) + ps])? == 0 {
            if !room {
                return Err(corrupt(rc, "data within the size limit"));
            }
            let prev = data.last().copied().unwrap_or(0);
            let base = m.literal_base(pos, prev);
            let probs = &mut m.literal[base..base + 0x300];
            let mut sym = 1usize;
            if m.state >= 7 {
                let at = pos - m.reps[0] as usize - 1;
                let mut match_byte = usize::from(data[at]);
                loop {
                    let match_bit = (match_byte >> 7) & 1;
                    match_byte <<= 1;
                    let bit = rc.bit(&mut probs[0x100 + (match_bit << 8) + sym])? as usize;
                    sym = (sym << 1) | bit;
                    if match_bit != bit || sym >= 0x100 {
                        break;
                    }
                }
            }
            while sym < 0x100 {
                sym = (sym << 1) | rc.bit(&mut probs[sym])? as usize;
            }
            data.push((sym - 0x100) as u8);
            w.literals += 1;
            m.after_literal();
            continue;
        }
        let len;
        if rc.bit(&mut m.is_rep[m.state])? == 0 {
            len = rc.len(&mut m.match_len, ps)?;
            m.after(7, 10);
            let dist = rc.distance(m, len)?;
            if dist == END_MARKER {
                w.token(TOKEN_END);
                return Ok(true);
            }
            m.reps = [dist, m.reps[0], m.reps[1], m.reps[2]];
            w.token(TOKEN_MATCH);
            put_varint(&mut w.parse, (len - MATCH_LEN_MIN) as u64);
            w.parse.extend_from_slice(&dist.to_le_bytes());
        } else {
            let index = if rc.bit(&mut m.is_rep_g0[m.state])? == 0 {
                if rc.bit(&mut m.is_rep0_long[(m.state << 4) + ps])? == 0 {
                    if pos == 0 || !room {
                        return Err(corrupt(
                            rc,
                            "a repeat after the first byte, within the size limit",
                        ));
                    }
                    m.after(9, 11);
                    let at = pos - m.reps[0] as usize - 1;
                    data.push(data[at]);
                    w.token(TOKEN_SHORT_REP);
                    continue;
                }
                0
            } else if rc.bit(&mut m.is_rep_g1[m.state])? == 0 {
                1
            } else if rc.bit(&mut m.is_rep_g2[m.state])? == 0 {
                2
            } else {
                3
            };
            let dist = m.reps[index];
            for i in (1..=index).rev() {
                m.reps[i] = m.reps[i - 1];
            }
            m.reps[0] = dist;
            len = rc.len(&mut m.rep_len, ps)?;
            m.after(8, 11);
            w.token(TOKEN_REP0 + index as u8);
            put_varint(&mut w.parse, (len - MATCH_LEN_MIN) as u64);
        }
        let dist = m.reps[0] as usize;
        if dist >= pos {
            return Err(corrupt(rc, "a match distance inside the data so far"));
        }
        if (pos + len) as u64 > limit {
            return Err(corrupt(rc, "a match that ends within the size limit"));
        }
        for i in 0..len {
            let b = data[pos - dist - 1 + i];
            data.push(b);
        }
    }
    Ok(false)
}

/// Decodes an LZMA2 stream (chunks up to the 0x00 end byte) from the start
/// of `input`; `max_data` bounds the output.
///
/// # Errors
/// As [`decode`], plus a bad chunk header, a chunk that continues a model
/// it never got, or a dictionary reset after the first chunk.
pub fn decode2(input: &[u8], max_data: u64) -> Result<Decoded> {
    let mut data: Vec<u8> = Vec::new();
    let mut w = ParseWriter {
        parse: Vec::new(),
        literals: 0,
    };
    let mut model: Option<Model> = None;
    let mut props: Option<Props> = None;
    let mut pos = 0usize;
    let error = |offset: usize, what| CodecError {
        offset: offset as u64,
        what,
    };
    let be16 = |at: usize| -> Result<usize> {
        let b = input
            .get(at..at + 2)
            .ok_or(error(at, "a chunk header (the stream is cut short)"))?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    loop {
        let control = *input.get(pos).ok_or(error(pos, "a chunk control byte"))?;
        let at = pos;
        pos += 1;
        if control == 0 {
            w.token(TOKEN_LZMA2_END);
            break;
        }
        if control == 1 || control == 2 {
            if control == 1 && !data.is_empty() {
                return Err(error(at, "a dictionary reset only in the first chunk"));
            }
            let size = be16(pos)? + 1;
            let bytes = input
                .get(pos + 2..pos + 2 + size)
                .ok_or(error(pos, "a stored chunk's bytes"))?;
            if (data.len() + size) as u64 > max_data {
                return Err(error(pos, "data within the size limit"));
            }
            data.extend_from_slice(bytes);
            w.token(TOKEN_LZMA2_STORED);
            w.parse.push(control);
            w.parse
                .extend_from_slice(&((size - 1) as u16).to_le_bytes());
            pos += 2 + size;
            continue;
        }
        if control < 0x80 {
            return Err(error(at, "a chunk control byte of 0, 1, 2 or 0x80 and up"));
        }
        let reset = (control >> 5) & 3;
        let unpacked = ((usize::from(control & 0x1f) << 16) | be16(pos)?) + 1;
        let packed = be16(pos + 2)? + 1;
        pos += 4;
        if reset == 3 && !data.is_empty() {
            return Err(error(at, "a dictionary reset only in the first chunk"));
        }
        w.token(TOKEN_LZMA2_CHUNK);
        w.parse.push(reset);
        w.parse.extend_from_slice(&(unpacked as u32).to_le_bytes());
        if reset >= 2 {
            let byte = *input.get(pos).ok_or(error(pos, "a chunk's props byte"))?;
            props = Some(Props::from_byte(byte).ok_or(error(pos, "props below 225"))?);
            w.parse.push(byte);
            pos += 1;
        }
        if reset >= 1 {
            let p = props.ok_or(error(at, "props before the first state reset"))?;
            model = Some(Model::new(p));
        }
        let m = model
            .as_mut()
            .ok_or(error(at, "a state reset in the first LZMA chunk"))?;
        let body = input
            .get(pos..pos + packed)
            .ok_or(error(pos, "a chunk's compressed bytes"))?;
        let mut rc = RangeDecoder::new(body).map_err(|e| error(pos + e.offset as usize, e.what))?;
        let end = (data.len() + unpacked) as u64;
        if end > max_data {
            return Err(error(at, "data within the size limit"));
        }
        symbols(&mut rc, m, &mut data, &mut w, Some(end), end)
            .map_err(|e| error(pos + e.offset as usize, e.what))?;
        w.flush();
        pos += packed;
    }
    Ok(Decoded {
        data,
        parse: w.parse,
        end_marker: false,
        read: pos,
    })
}

// ---------------------------------------------------------------- encoding

struct RangeEncoder {
    low: u64,
    range: u32,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
}

impl RangeEncoder {
    fn new() -> Self {
        RangeEncoder {
            low: 0,
            range: u32::MAX,
            cache: 0,
            cache_size: 1,
            out: Vec::new(),
        }
    }

    fn shift_low(&mut self) {
        if (self.low as u32) < 0xff00_0000 || (self.low >> 32) != 0 {
            let carry = (self.low >> 32) as u8;
            let mut temp = self.cache;
            loop {
                self.out.push(temp.wrapping_add(carry));
                temp = 0xff;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = (self.low >> 24) as u8;
        }
        self.cache_size += 1;
        self.low = u64::from((self.low as u32) << 8);
    }

    fn bit(&mut self, prob: &mut u16, bit: u32) {
        let bound = (self.range >> 11) * u32::from(*prob);
        if bit == 0 {
            self.range = bound;
            *prob += ((BIT_MODEL_TOTAL - u32::from(*prob)) >> MOVE_BITS) as u16;
        } else {
            self.low += u64::from(bound);
            self.range -= bound;
            *prob -= *prob >> MOVE_BITS;
        }
        while self.range < TOP {
            self.range <<= 8;
            self.shift_low();
        }
    }

    fn direct(&mut self, value: u32, count: u32) {
        for i in (0..count).rev() {
            self.range >>= 1;
            if (value >> i) & 1 == 1 {
                self.low += u64::from(self.range);
            }
            while self.range < TOP {
                self.range <<= 8;
                self.shift_low();
            }
        }
    }

    fn tree(&mut self, probs: &mut [u16], bits: u32, value: u32) {
        let mut m = 1usize;
        for i in (0..bits).rev() {
            let bit = (value >> i) & 1;
            self.bit(&mut probs[m], bit);
            m = (m << 1) | bit as usize;
        }
    }

    fn reverse_tree(&mut self, probs: &mut [u16], base: usize, bits: u32, value: u32) {
        let mut m = 1usize;
        for i in 0..bits {
            let bit = (value >> i) & 1;
            self.bit(&mut probs[base + m], bit);
            m = (m << 1) | bit as usize;
        }
    }

    fn len(&mut self, l: &mut LenModel, pos_state: usize, len: usize) {
        let v = (len - MATCH_LEN_MIN) as u32;
        if v < 8 {
            self.bit(&mut l.choice, 0);
            self.tree(&mut l.low[pos_state], 3, v);
        } else if v < 16 {
            self.bit(&mut l.choice, 1);
            self.bit(&mut l.choice2, 0);
            self.tree(&mut l.mid[pos_state], 3, v - 8);
        } else {
            self.bit(&mut l.choice, 1);
            self.bit(&mut l.choice2, 1);
            self.tree(&mut l.high, 8, v - 16);
        }
    }

    fn distance(&mut self, m: &mut Model, len: usize, dist: u32) {
        let len_state = (len - MATCH_LEN_MIN).min(LEN_TO_POS_STATES - 1);
        let slot = pos_slot(dist);
        self.tree(&mut m.pos_slot[len_state], 6, slot);
        if slot < 4 {
            return;
        }
        let direct = (slot >> 1) - 1;
        let base = (2 | (slot & 1)) << direct;
        let rest = dist - base;
        if slot < END_POS_MODEL_INDEX {
            self.reverse_tree(&mut m.pos_special, (base - slot) as usize, direct, rest);
        } else {
            self.direct(rest >> ALIGN_BITS, direct - ALIGN_BITS);
            self.reverse_tree(&mut m.align, 0, ALIGN_BITS, rest & ((1 << ALIGN_BITS) - 1));
        }
    }

    fn finish(mut self) -> Vec<u8> {
        for _ in 0..5 {
            self.shift_low();
        }
        self.out
    }
}

/// Reads a match length of 2 to 273.
fn match_len(r: &mut ParseReader<'_>) -> Result<usize> {
    let v = r.varint("a match length")?;
    if v > (MATCH_LEN_MAX - MATCH_LEN_MIN) as u64 {
        return Err(r.error("a match length of 2 to 273"));
    }
    Ok(v as usize + MATCH_LEN_MIN)
}

/// Codes `data` as the LZMA stream `parse` describes, with parameters
/// `props`; the end marker is coded when the parse ends with one.
///
/// # Errors
/// A parse that is malformed, does not cover `data` exactly, or copies
/// bytes that differ from the data (so it could not decode to it).
pub fn encode(data: &[u8], parse: &[u8], props: Props) -> Result<Vec<u8>> {
    let mut rc = RangeEncoder::new();
    let mut m = Model::new(props);
    let mut r = ParseReader { parse, pos: 0 };
    let mut pos = 0usize;
    symbols_out(&mut rc, &mut m, data, &mut r, &mut pos, false)?;
    if pos != data.len() {
        return Err(r.error("a parse that covers all the data"));
    }
    Ok(rc.finish())
}

/// Codes the parse's tokens from data position `*pos`: to the parse's end
/// (or its end marker), or, for an LZMA2 chunk, until `data` (cut at the
/// chunk's end) is covered.
fn symbols_out(
    rc: &mut RangeEncoder,
    m: &mut Model,
    data: &[u8],
    r: &mut ParseReader<'_>,
    at: &mut usize,
    chunk: bool,
) -> Result<()> {
    let mut pos = *at;
    while r.pos < r.parse.len() && !(chunk && pos == data.len()) {
        let tag = r.byte("a token")?;
        match tag {
            TOKEN_LITERALS => {
                let n = r.varint("a literal count")?.saturating_add(1);
                if n > (data.len() - pos) as u64 {
                    return Err(r.error("literals within the data"));
                }
                for _ in 0..n {
                    let ps = m.pos_state(pos);
                    rc.bit(&mut m.is_match[(m.state << 4) + ps], 0);
                    let prev = if pos == 0 { 0 } else { data[pos - 1] };
                    let base = m.literal_base(pos, prev);
                    let probs = &mut m.literal[base..base + 0x300];
                    let byte = u32::from(data[pos]);
                    let mut sym = 1usize;
                    let mut i = 8;
                    if m.state >= 7 {
                        let at = pos.checked_sub(m.reps[0] as usize + 1);
                        let Some(at) = at else {
                            return Err(r.error("a literal after a match inside the data"));
                        };
                        let mut match_byte = u32::from(data[at]);
                        while i > 0 {
                            i -= 1;
                            let match_bit = ((match_byte >> 7) & 1) as usize;
                            match_byte <<= 1;
                            let bit = (byte >> i) & 1;
                            rc.bit(&mut probs[0x100 + (match_bit << 8) + sym], bit);
                            sym = (sym << 1) | bit as usize;
                            if match_bit != bit as usize {
                                break;
                            }
                        }
                    }
                    while i > 0 {
                        i -= 1;
                        let bit = (byte >> i) & 1;
                        rc.bit(&mut probs[sym], bit);
                        sym = (sym << 1) | bit as usize;
                    }
                    m.after_literal();
                    pos += 1;
                }
                continue;
            }
            TOKEN_SHORT_REP => {
                let ps = m.pos_state(pos);
                let dist = m.reps[0] as usize;
                if pos == data.len() || dist >= pos || data[pos] != data[pos - dist - 1] {
                    return Err(r.error("a short repeat of the data's own byte"));
                }
                rc.bit(&mut m.is_match[(m.state << 4) + ps], 1);
                rc.bit(&mut m.is_rep[m.state], 1);
                rc.bit(&mut m.is_rep_g0[m.state], 0);
                rc.bit(&mut m.is_rep0_long[(m.state << 4) + ps], 0);
                m.after(9, 11);
                pos += 1;
                continue;
            }
            TOKEN_END => {
                if chunk || r.pos != r.parse.len() || pos != data.len() {
                    return Err(r.error("the end marker last, after all the data, not in LZMA2"));
                }
                let ps = m.pos_state(pos);
                rc.bit(&mut m.is_match[(m.state << 4) + ps], 1);
                rc.bit(&mut m.is_rep[m.state], 0);
                rc.len(&mut m.match_len, ps, MATCH_LEN_MIN);
                m.after(7, 10);
                rc.distance(m, MATCH_LEN_MIN, END_MARKER);
                break;
            }
            _ => {}
        }
        let ps = m.pos_state(pos);
        let len;
        if tag == TOKEN_MATCH {
            len = match_len(r)?;
            let dist_bytes = [
                r.byte("a match distance")?,
                r.byte("a match distance")?,
                r.byte("a match distance")?,
                r.byte("a match distance")?,
            ];
            let dist = u32::from_le_bytes(dist_bytes);
            if dist == END_MARKER {
                return Err(r.error("a match distance below 0xffffffff"));
            }
            rc.bit(&mut m.is_match[(m.state << 4) + ps], 1);
            rc.bit(&mut m.is_rep[m.state], 0);
            rc.len(&mut m.match_len, ps, len);
            m.after(7, 10);
            rc.distance(m, len, dist);
            m.reps = [dist, m.reps[0], m.reps[1], m.reps[2]];
        } else if (TOKEN_REP0..TOKEN_REP0 + 4).contains(&tag) {
            let index = usize::from(tag - TOKEN_REP0);
            len = match_len(r)?;
            rc.bit(&mut m.is_match[(m.state << 4) + ps], 1);
            rc.bit(&mut m.is_rep[m.state], 1);
            if index == 0 {
                rc.bit(&mut m.is_rep_g0[m.state], 0);
                rc.bit(&mut m.is_rep0_long[(m.state << 4) + ps], 1);
            } else {
                rc.bit(&mut m.is_rep_g0[m.state], 1);
                rc.bit(&mut m.is_rep_g1[m.state], u32::from(index > 1));
                if index > 1 {
                    rc.bit(&mut m.is_rep_g2[m.state], u32::from(index > 2));
                }
            }
            let dist = m.reps[index];
            for i in (1..=index).rev() {
                m.reps[i] = m.reps[i - 1];
            }
            m.reps[0] = dist;
            rc.len(&mut m.rep_len, ps, len);
            m.after(8, 11);
        } else {
            return Err(CodecError {
                offset: r.pos as u64 - 1,
                what: "a token tag of 0 to 7",
            });
        }
        let dist = m.reps[0] as usize;
        if dist >= pos || len > data.len() - pos {
            return Err(r.error("a match inside the data"));
        }
        if data[pos..pos + len]
            .iter()
            .zip(&data[pos - dist - 1..])
            .any(|(a, b)| a != b)
        {
            return Err(r.error("a match whose bytes equal the data"));
        }
        pos += len;
    }
    *at = pos;
    Ok(())
}

/// Codes `data` as the LZMA2 stream `parse` describes.
///
/// # Errors
/// As [`encode`], plus chunk tokens that are malformed or whose coded
/// chunk would not fit LZMA2's 64 KiB packed size.
pub fn encode2(data: &[u8], parse: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let mut r = ParseReader { parse, pos: 0 };
    let mut pos = 0usize;
    let mut model: Option<Model> = None;
    let mut props: Option<Props> = None;
    loop {
        match r.byte("a chunk token")? {
            TOKEN_LZMA2_END => {
                out.push(0);
                break;
            }
            TOKEN_LZMA2_STORED => {
                let control = r.byte("a stored chunk's control")?;
                let size = usize::from(u16::from_le_bytes([r.byte("size")?, r.byte("size")?])) + 1;
                let bytes = data
                    .get(pos..pos + size)
                    .ok_or(r.error("a stored chunk inside the data"))?;
                if control != 1 && control != 2 {
                    return Err(r.error("a stored chunk control of 1 or 2"));
                }
                out.push(control);
                out.extend_from_slice(&((size - 1) as u16).to_be_bytes());
                out.extend_from_slice(bytes);
                pos += size;
            }
            TOKEN_LZMA2_CHUNK => {
                let reset = r.byte("a chunk's reset")?;
                let unpacked = u32::from_le_bytes([
                    r.byte("unpacked size")?,
                    r.byte("unpacked size")?,
                    r.byte("unpacked size")?,
                    r.byte("unpacked size")?,
                ]) as usize;
                if reset > 3 || unpacked == 0 || unpacked > 1 << 21 {
                    return Err(r.error("a reset of 0 to 3 and 1 B to 2 MiB unpacked"));
                }
                let mut props_byte = None;
                if reset >= 2 {
                    let b = r.byte("a chunk's props")?;
                    props = Some(Props::from_byte(b).ok_or(r.error("props below 225"))?);
                    props_byte = Some(b);
                }
                if reset >= 1 {
                    let p = props.ok_or(r.error("props before the first state reset"))?;
                    model = Some(Model::new(p));
                }
                let m = model.as_mut().ok_or(r.error("a state reset first"))?;
                let end = pos + unpacked;
                let chunk_data = data.get(..end).ok_or(r.error("a chunk inside the data"))?;
                let mut rc = RangeEncoder::new();
                symbols_out(&mut rc, m, chunk_data, &mut r, &mut pos, true)?;
                if pos != end {
                    return Err(r.error("chunk symbols that cover the chunk"));
                }
                let body = rc.finish();
                if body.len() > 1 << 16 {
                    return Err(r.error("a chunk of at most 64 KiB coded"));
                }
                let u = unpacked - 1;
                out.push(0x80 | (reset << 5) | (u >> 16) as u8);
                out.extend_from_slice(&(u as u16).to_be_bytes());
                out.extend_from_slice(&((body.len() - 1) as u16).to_be_bytes());
                out.extend(props_byte);
                out.extend_from_slice(&body);
            }
            _ => return Err(r.error("a chunk token 0x20, 0x21 or 0x22")),
        }
    }
    if r.pos != parse.len() || pos != data.len() {
        return Err(r.error("a parse that ends with the stream and covers all the data"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pos_slots_match_the_format() {
        assert_eq!(pos_slot(0), 0);
        assert_eq!(pos_slot(3), 3);
        assert_eq!(pos_slot(4), 4);
        assert_eq!(pos_slot(5), 4);
        assert_eq!(pos_slot(6), 5);
        assert_eq!(pos_slot(8), 6);
        assert_eq!(pos_slot(u32::MAX), 63);
    }

    #[test]
    fn props_split_like_the_header_byte() {
        let p = Props::from_byte(0x5d).unwrap();
        assert_eq!((p.lc, p.lp, p.pb), (3, 0, 2));
        assert!(Props::from_byte(225).is_none());
    }
}
