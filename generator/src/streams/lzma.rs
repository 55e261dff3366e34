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

pub use fota_format::lzma::Props;
use fota_format::lzma::{
    decode_symbols, pos_slot, LenModel, Model, RangeDecoder, Sink, ALIGN_BITS, BIT_MODEL_TOTAL,
    END_MARKER, END_POS_MODEL_INDEX, LEN_TO_POS_STATES, MATCH_LEN_MAX, MATCH_LEN_MIN, MOVE_BITS,
    TOP,
};

use super::{put_varint, CodecError, ParseReader};

const TOKEN_LITERALS: u8 = 0;
const TOKEN_SHORT_REP: u8 = 1;
const TOKEN_REP0: u8 = 2;
const TOKEN_MATCH: u8 = 6;
const TOKEN_END: u8 = 7;
const TOKEN_LZMA2_CHUNK: u8 = 0x20;
const TOKEN_LZMA2_STORED: u8 = 0x21;
const TOKEN_LZMA2_END: u8 = 0x22;

type Result<T> = std::result::Result<T, CodecError>;

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

impl Sink for ParseWriter {
    fn literal(&mut self) {
        self.literals += 1;
    }

    fn short_rep(&mut self) {
        self.token(TOKEN_SHORT_REP);
    }

    fn rep(&mut self, index: usize, len: usize) {
        self.token(TOKEN_REP0 + index as u8);
        put_varint(&mut self.parse, (len - MATCH_LEN_MIN) as u64);
    }

    fn matched(&mut self, len: usize, dist: u32) {
        self.token(TOKEN_MATCH);
        put_varint(&mut self.parse, (len - MATCH_LEN_MIN) as u64);
        self.parse.extend_from_slice(&dist.to_le_bytes());
    }

    fn end(&mut self) {
        self.token(TOKEN_END);
    }
}

/// Bytes of output a decode starts with; a real stream's output grows from
/// there. The image scan tries thousands of false candidates, each failing
/// within a few bytes: when each reserved its declared size (up to eight
/// times the rest of the image), freeing it made glibc give the pages back
/// at once, and on two threads those `madvise` calls (5,700 for a 10 MB
/// pair) and their TLB shootdowns made the scan 2.5 times slower than on
/// one (0.14 s against 0.056 s).
const FIRST_ROOM: u64 = 64 << 10;

/// Decodes a raw LZMA stream (no 13-byte header) with parameters `props`,
/// producing `size` bytes, or up to the end marker when `size` is `None`.
/// `max_data` bounds the output whatever the stream says.
///
/// # Errors
/// A corrupt or cut-short stream, a distance before the start of the data,
/// or more than `max_data` bytes.
pub fn decode(input: &[u8], props: Props, size: Option<u64>, max_data: u64) -> Result<Decoded> {
    let limit = size.unwrap_or(u64::MAX).min(max_data);
    // Room for the declared size, but no more than a typical ratio of the
    // input (a false match's header may declare a gigabyte), and at first
    // no more than [`FIRST_ROOM`].
    let room = size
        .unwrap_or(0)
        .min(max_data)
        .min((input.len() as u64).saturating_mul(8).saturating_add(4096))
        .min(FIRST_ROOM);
    let mut decoded = decode_onto(input, props, Vec::with_capacity(room as usize), size, limit)?;
    // A real stream grew its output by doubling: what it kept spare would
    // stay reserved until the image is expanded.
    let data = &mut decoded.data;
    if data.capacity() - data.len() > FIRST_ROOM as usize {
        data.shrink_to_fit();
    }
    Ok(decoded)
}

/// [`decode`] of a stream that continues after `dict` (a preset
/// dictionary, as `fota_format::lzma::decode_after` decodes it), up to its
/// end marker or `max_data` bytes: the data holds `dict` first, the parse
/// only the stream's own decisions.
///
/// # Errors
/// As [`decode`].
pub fn decode_after(input: &[u8], props: Props, dict: &[u8], max_data: u64) -> Result<Decoded> {
    let limit = (dict.len() as u64).saturating_add(max_data);
    let mut data: Vec<u8> = Vec::with_capacity(usize::try_from(limit).unwrap_or(0));
    data.extend_from_slice(dict);
    decode_onto(input, props, data, None, limit)
}

/// Decodes `input` onto the end of `data` (up to `size` bytes of data in
/// all, or the end marker; never past `limit`), recording the parse.
fn decode_onto(
    input: &[u8],
    props: Props,
    mut data: Vec<u8>,
    size: Option<u64>,
    limit: u64,
) -> Result<Decoded> {
    let mut rc = RangeDecoder::new(input)?;
    let mut m = Model::new(props);
    let mut w = ParseWriter {
        parse: Vec::new(),
        literals: 0,
    };
    let end_marker = decode_symbols(&mut rc, &mut m, &mut data, &mut w, size, limit)?;
    w.flush();
    Ok(Decoded {
        data,
        parse: w.parse,
        end_marker,
        read: rc.position(),
    })
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
        decode_symbols(&mut rc, m, &mut data, &mut w, Some(end), end)
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

/// One stretch of a long stream, coded by an encoder of its own that first
/// ran over `lead` bytes of the data before it (so its model and
/// dictionary are warm when the stretch begins), for [`splice`].
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// The piece encoder's parse, covering the lead and then the stretch.
    pub parse: &'a [u8],
    /// Bytes of the parse that only warmed the encoder up.
    pub lead: u64,
}

/// A parse token with the distance a repeat stands for resolved.
#[derive(Debug, Clone, Copy)]
enum Token {
    Literals(u64),
    ShortRep(u32),
    Rep(usize, u64, u32),
    Match(u64, u32),
}

impl Token {
    fn len(self) -> u64 {
        match self {
            Token::Literals(n) => n,
            Token::ShortRep(_) => 1,
            Token::Rep(_, len, _) | Token::Match(len, _) => len,
        }
    }
}

/// The tokens of a parse (without its end marker), each repeat's distance
/// resolved against the four last distances as the decoder keeps them.
fn tokens(parse: &[u8]) -> Result<Vec<Token>> {
    let mut reps = [0u32; 4];
    let mut out = Vec::new();
    let mut r = ParseReader { parse, pos: 0 };
    while r.pos < parse.len() {
        let tag = r.byte("a token")?;
        out.push(match tag {
            TOKEN_LITERALS => Token::Literals(r.varint("a literal count")?.saturating_add(1)),
            TOKEN_SHORT_REP => Token::ShortRep(reps[0]),
            t if (TOKEN_REP0..TOKEN_MATCH).contains(&t) => {
                let i = usize::from(t - TOKEN_REP0);
                let len = r.varint("a repeat length")?.saturating_add(2);
                let dist = reps[i];
                reps.copy_within(0..i, 1);
                reps[0] = dist;
                Token::Rep(i, len, dist)
            }
            TOKEN_MATCH => {
                let len = r.varint("a match length")?.saturating_add(2);
                let dist = r.u32("a match distance")?;
                reps = [dist, reps[0], reps[1], reps[2]];
                Token::Match(len, dist)
            }
            TOKEN_END if r.pos == parse.len() => break,
            _ => return Err(r.error("a literal, repeat or match token")),
        });
    }
    Ok(out)
}

/// One parse of the pieces' stretches end to end, which [`encode`] codes
/// as a single stream. Each piece keeps its encoder's choices: the lead's
/// tokens go, a token across the lead's end keeps only its tail (a match at
/// the same distance, or literals when under two bytes), and a repeat whose
/// distance is not where the joined stream's last four distances put it
/// becomes a repeat of where it is, or a match (a short repeat: a literal).
/// Only a piece's first few tokens change: four matches in, its last
/// distances are the joined stream's.
///
/// # Errors
/// A malformed parse, or a lead longer than its parse.
pub fn splice(pieces: &[Piece<'_>]) -> Result<Vec<u8>> {
    let mut w = ParseWriter {
        parse: Vec::new(),
        literals: 0,
    };
    let mut reps = [0u32; 4];
    for piece in pieces {
        let mut at = 0u64;
        for token in tokens(piece.parse)? {
            let end = at + token.len();
            let token = match (at >= piece.lead, end > piece.lead, token) {
                (true, _, t) => t,
                (false, false, _) => {
                    at = end;
                    continue;
                }
                (false, true, Token::Rep(_, _, d) | Token::Match(_, d))
                    if end - piece.lead >= 2 =>
                {
                    Token::Match(end - piece.lead, d)
                }
                (false, true, _) => Token::Literals(end - piece.lead),
            };
            at = end;
            match token {
                Token::Literals(n) => w.literals += n,
                Token::ShortRep(d) if d == reps[0] => w.short_rep(),
                Token::ShortRep(_) => w.literals += 1,
                Token::Rep(i, len, d) => {
                    let held = if reps[i] == d {
                        Some(i)
                    } else {
                        reps.iter().position(|&r| r == d)
                    };
                    match held {
                        Some(i) => {
                            w.rep(i, len as usize);
                            reps.copy_within(0..i, 1);
                            reps[0] = d;
                        }
                        None => {
                            w.matched(len as usize, d);
                            reps = [d, reps[0], reps[1], reps[2]];
                        }
                    }
                }
                Token::Match(len, d) => {
                    w.matched(len as usize, d);
                    reps = [d, reps[0], reps[1], reps[2]];
                }
            }
        }
        if at < piece.lead {
            return Err(CodecError {
                offset: piece.parse.len() as u64,
                what: "a parse that covers its lead",
            });
        }
    }
    w.flush();
    Ok(w.parse)
}

/// Codes `data` as the LZMA stream `parse` describes, with parameters
/// `props`; the end marker is coded when the parse ends with one.
///
/// # Errors
/// A parse that is malformed, does not cover `data` exactly, or copies
/// bytes that differ from the data (so it could not decode to it).
pub fn encode(data: &[u8], parse: &[u8], props: Props) -> Result<Vec<u8>> {
    encode_after(data, 0, parse, props)
}

/// Codes `data[start..]` as the LZMA stream `parse` describes, continuing
/// after `data[..start]`: a preset dictionary that distances may reach
/// into, counted in the positions `lp` and `pb` read (as
/// `fota_format::lzma::decode_after` decodes it).
///
/// # Errors
/// As [`encode`].
pub fn encode_after(data: &[u8], start: usize, parse: &[u8], props: Props) -> Result<Vec<u8>> {
    let mut rc = RangeEncoder::new();
    let mut m = Model::new(props);
    let mut r = ParseReader { parse, pos: 0 };
    let mut pos = start.min(data.len());
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
            let dist = r.u32("a match distance")?;
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
    fn a_declared_gigabyte_reserves_no_gigabyte() {
        // A header found by chance may declare any size: the buffer grows
        // with what the stream really holds.
        use xz2::stream::{Action, LzmaOptions, Stream};
        let data = b"firmware ".repeat(100);
        let opts = LzmaOptions::new_preset(6).unwrap();
        let mut enc = Stream::new_lzma_encoder(&opts).unwrap();
        let mut alone = Vec::with_capacity(4096);
        enc.process_vec(&data, &mut alone, Action::Finish).unwrap();
        let body = &alone[13..];
        let props = Props::from_byte(alone[0]).unwrap();
        // The stream ends at its end marker, before the declared size.
        let d = decode(body, props, Some(1 << 30), 1 << 30).unwrap();
        assert!(d.end_marker);
        assert_eq!(d.data, data);
        assert!(d.data.capacity() < 1 << 20, "{}", d.data.capacity());
        let d = decode(body, props, Some(data.len() as u64), 1 << 30).unwrap();
        assert_eq!(d.data, data);
    }

    #[test]
    fn props_split_like_the_header_byte() {
        let p = Props::from_byte(0x5d).unwrap();
        assert_eq!((p.lc, p.lp, p.pb), (3, 0, 2));
        assert!(Props::from_byte(225).is_none());
    }
}
