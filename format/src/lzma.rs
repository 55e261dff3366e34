//! Raw LZMA decoding (feature `lzma`, allocates): the probability model,
//! the range decoder and the symbol loop, shared by the [`Codec::Lzma`]
//! payload decoder and the generator's stream splitter.
//!
//! LZMA is Igor Pavlov's LZ77 + adaptive binary range coder (the `.lzma`
//! and `.7z` codec). Here it is raw: no 13-byte header, the caller knows
//! the `lc`/`lp`/`pb` parameters and how many bytes to produce. The whole
//! output stays in memory and is the dictionary, so there is no window
//! size to configure and every distance is checked against the bytes
//! produced so far.
//!
//! The symbol loop reports each decision it decodes to a [`Sink`]; the
//! plain decoder ignores them, the generator records them to re-encode a
//! stream bit-exactly.
//!
//! [`Codec::Lzma`]: crate::Codec::Lzma

use alloc::vec;
use alloc::vec::Vec;

/// Probabilities are 11-bit.
pub const BIT_MODEL_TOTAL: u32 = 1 << 11;
/// A probability moves by 1/32 of its distance to 0 or 1 after each bit.
pub const MOVE_BITS: u32 = 5;
/// The range is renormalised when it falls below this.
pub const TOP: u32 = 1 << 24;
/// States of the literal/match state machine.
pub const STATES: usize = 12;
/// Most position states (`pb` ≤ 4).
pub const POS_STATES_MAX: usize = 1 << 4;
/// Length states that select a distance-slot model.
pub const LEN_TO_POS_STATES: usize = 4;
/// First distance slot whose low bits are coded with the align model.
pub const END_POS_MODEL_INDEX: u32 = 14;
/// Distances below this are coded entirely with context models.
pub const FULL_DISTANCES: u32 = 128;
/// Low distance bits coded with the align model.
pub const ALIGN_BITS: u32 = 4;
/// Shortest match.
pub const MATCH_LEN_MIN: usize = 2;
/// Longest match.
pub const MATCH_LEN_MAX: usize = 273;
/// The distance value of the end-of-stream marker.
pub const END_MARKER: u32 = u32::MAX;
/// Probabilities of one literal coder (normal tree + matched trees).
pub const LITERAL_CODER_LEN: usize = 0x300;
/// The initial probability, one half.
const HALF: u16 = (BIT_MODEL_TOTAL / 2) as u16;

/// A decoding failure: where in the compressed bytes, and what was
/// expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LzmaError {
    /// Offset in the compressed input.
    pub offset: u64,
    /// What was expected.
    pub what: &'static str,
}

/// Shorthand for decoding results.
pub type Result<T> = core::result::Result<T, LzmaError>;

/// The `lc`/`lp`/`pb` parameters of a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Props {
    /// Literal context bits: high bits of the previous byte (0 to 8).
    pub lc: u32,
    /// Literal position bits (0 to 4).
    pub lp: u32,
    /// Position bits of the match/literal decision (0 to 4).
    pub pb: u32,
}

impl Props {
    /// liblzma's default, `lc=3 lp=0 pb=2`.
    pub const DEFAULT: Props = Props {
        lc: 3,
        lp: 0,
        pb: 2,
    };

    /// The parameters of a props byte `(pb * 5 + lp) * 9 + lc`, if below 225.
    pub fn from_byte(byte: u8) -> Option<Props> {
        let b = u32::from(byte);
        (b < 225).then_some(Props {
            lc: b % 9,
            lp: b / 9 % 5,
            pb: b / 45,
        })
    }

    /// The props byte of these parameters.
    pub fn to_byte(self) -> u8 {
        ((self.pb * 5 + self.lp) * 9 + self.lc) as u8
    }
}

/// The adaptive length coder of matches or repeats.
#[derive(Debug, Clone)]
pub struct LenModel {
    /// Length ≥ 8?
    pub choice: u16,
    /// Length ≥ 16?
    pub choice2: u16,
    /// Lengths 2–9 per position state.
    pub low: [[u16; 8]; POS_STATES_MAX],
    /// Lengths 10–17 per position state.
    pub mid: [[u16; 8]; POS_STATES_MAX],
    /// Lengths 18–273.
    pub high: [u16; 256],
}

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

/// The probability model and coder state, the same for both directions.
#[derive(Debug, Clone)]
pub struct Model {
    /// Literal coders, [`LITERAL_CODER_LEN`] probabilities per context.
    pub literal: Vec<u16>,
    /// Match or literal, per state and position state.
    pub is_match: [u16; STATES * POS_STATES_MAX],
    /// Repeat or new match, per state.
    pub is_rep: [u16; STATES],
    /// Repeat of distance 0?
    pub is_rep_g0: [u16; STATES],
    /// Repeat of distance 1?
    pub is_rep_g1: [u16; STATES],
    /// Repeat of distance 2?
    pub is_rep_g2: [u16; STATES],
    /// Long repeat (not a one-byte short repeat), per state and position state.
    pub is_rep0_long: [u16; STATES * POS_STATES_MAX],
    /// Distance slots per length state.
    pub pos_slot: [[u16; 64]; LEN_TO_POS_STATES],
    /// Low bits of distances below [`FULL_DISTANCES`].
    pub pos_special: [u16; 1 + (FULL_DISTANCES - END_POS_MODEL_INDEX) as usize],
    /// The four lowest bits of long distances.
    pub align: [u16; 1 << ALIGN_BITS],
    /// Match lengths.
    pub match_len: LenModel,
    /// Repeat lengths.
    pub rep_len: LenModel,
    /// The stream's parameters.
    pub props: Props,
    /// The state machine's state (0 to 11; 7 and above after a match).
    pub state: usize,
    /// The last four distances, most recent first.
    pub reps: [u32; 4],
}

impl Model {
    /// A fresh model for `props` (`lc + lp` ≤ 12, `pb` ≤ 4, as from
    /// [`Props::from_byte`]).
    pub fn new(props: Props) -> Self {
        Model {
            literal: vec![HALF; LITERAL_CODER_LEN << (props.lc + props.lp)],
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

    /// The position state of output position `pos`.
    pub fn pos_state(&self, pos: usize) -> usize {
        pos & ((1 << self.props.pb) - 1)
    }

    /// Index into [`Model::is_match`] and [`Model::is_rep0_long`] at `pos`.
    pub fn state_index(&self, pos: usize) -> usize {
        (self.state << 4) + self.pos_state(pos)
    }

    /// First probability of the literal coder for position `pos` after
    /// byte `prev`.
    pub fn literal_base(&self, pos: usize, prev: u8) -> usize {
        let lp_mask = (1usize << self.props.lp) - 1;
        let high = (usize::from(prev) << self.props.lc) >> 8;
        LITERAL_CODER_LEN * (((pos & lp_mask) << self.props.lc) + high)
    }

    /// The state after a literal.
    pub fn after_literal(&mut self) {
        self.state = match self.state {
            0..=3 => 0,
            4..=9 => self.state - 3,
            _ => self.state - 6,
        };
    }

    /// The state after a match, long repeat or short repeat: `literal_state`
    /// when the previous symbol was a literal, `other` otherwise.
    pub fn after(&mut self, literal_state: usize, other: usize) {
        self.state = if self.state < 7 { literal_state } else { other };
    }
}

/// The distance slot of a distance value.
pub fn pos_slot(dist: u32) -> u32 {
    if dist < 4 {
        return dist;
    }
    let top = 31 - dist.leading_zeros();
    (top << 1) | ((dist >> (top - 1)) & 1)
}

/// The probability at `i` of a model table (indices are bounded by
/// construction; a miss is reported rather than trusted).
fn prob(probs: &mut [u16], i: usize) -> Result<&mut u16> {
    probs.get_mut(i).ok_or(LzmaError {
        offset: 0,
        what: "a model index inside its table",
    })
}

/// The range decoder over one compressed stream.
#[derive(Debug)]
pub struct RangeDecoder<'a> {
    input: &'a [u8],
    pos: usize,
    range: u32,
    code: u32,
}

impl<'a> RangeDecoder<'a> {
    /// Starts decoding `input` (its first five bytes prime the coder).
    ///
    /// # Errors
    /// Fewer than five bytes, or a start that no encoder writes.
    pub fn new(input: &'a [u8]) -> Result<Self> {
        let head = input.get(..5).ok_or(LzmaError {
            offset: input.len() as u64,
            what: "5 bytes of range coder start",
        })?;
        if head.first() != Some(&0) {
            return Err(LzmaError {
                offset: 0,
                what: "range coder start byte 0",
            });
        }
        let code = u32::from_be_bytes([
            head.get(1).copied().unwrap_or(0),
            head.get(2).copied().unwrap_or(0),
            head.get(3).copied().unwrap_or(0),
            head.get(4).copied().unwrap_or(0),
        ]);
        if code == u32::MAX {
            return Err(LzmaError {
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

    /// Compressed bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// An error at the current input position.
    pub fn error(&self, what: &'static str) -> LzmaError {
        LzmaError {
            offset: self.pos as u64,
            what,
        }
    }

    fn normalize(&mut self) -> Result<()> {
        if self.range < TOP {
            let byte = *self
                .input
                .get(self.pos)
                .ok_or(self.error("more compressed bytes (the stream is cut short)"))?;
            self.pos += 1;
            self.range <<= 8;
            self.code = (self.code << 8) | u32::from(byte);
        }
        Ok(())
    }

    /// Decodes one bit with probability `prob` and adapts it.
    pub fn bit(&mut self, prob: &mut u16) -> Result<u32> {
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

    fn bit_at(&mut self, probs: &mut [u16], i: usize) -> Result<u32> {
        self.bit(prob(probs, i)?)
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
            m = (m << 1) | self.bit_at(probs, m)? as usize;
        }
        Ok(m as u32 - (1 << bits))
    }

    fn reverse_tree(&mut self, probs: &mut [u16], base: usize, bits: u32) -> Result<u32> {
        let (mut m, mut v) = (1usize, 0u32);
        for i in 0..bits {
            let bit = self.bit_at(probs, base + m)?;
            m = (m << 1) | bit as usize;
            v |= bit << i;
        }
        Ok(v)
    }

    fn len(&mut self, l: &mut LenModel, pos_state: usize) -> Result<usize> {
        let v = if self.bit(&mut l.choice)? == 0 {
            let low = l
                .low
                .get_mut(pos_state)
                .ok_or(self.error("a position state"))?;
            self.tree(low, 3)?
        } else if self.bit(&mut l.choice2)? == 0 {
            let mid = l
                .mid
                .get_mut(pos_state)
                .ok_or(self.error("a position state"))?;
            8 + self.tree(mid, 3)?
        } else {
            16 + self.tree(&mut l.high, 8)?
        };
        Ok(v as usize + MATCH_LEN_MIN)
    }

    fn distance(&mut self, m: &mut Model, len: usize) -> Result<u32> {
        let len_state = (len - MATCH_LEN_MIN).min(LEN_TO_POS_STATES - 1);
        let slots = m
            .pos_slot
            .get_mut(len_state)
            .ok_or(self.error("a length state"))?;
        let slot = self.tree(slots, 6)?;
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

/// Receives the decisions the symbol loop decodes, in order. Every method
/// does nothing by default.
pub trait Sink {
    /// One literal byte was produced.
    fn literal(&mut self) {}
    /// A short repeat (one byte at the last distance) was produced.
    fn short_rep(&mut self) {}
    /// A repeat of the `index`-th last distance (0 to 3), `len` bytes.
    fn rep(&mut self, _index: usize, _len: usize) {}
    /// A match of `len` bytes at distance value `dist` (the copy starts
    /// `dist + 1` bytes back).
    fn matched(&mut self, _len: usize, _dist: u32) {}
    /// The end-of-stream marker.
    fn end(&mut self) {}
}

/// A sink that keeps nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Sink for Discard {}

/// Decodes symbols into `data` until it holds `size` bytes or, when `size`
/// is `None`, up to the end marker; returns whether the marker came.
/// `data` may already hold earlier output (the dictionary); `limit` bounds
/// its length whatever the stream says.
///
/// # Errors
/// A corrupt or cut-short stream, a distance before the start of the data,
/// or output beyond `limit`.
pub fn decode_symbols(
    rc: &mut RangeDecoder<'_>,
    m: &mut Model,
    data: &mut Vec<u8>,
    sink: &mut dyn Sink,
    size: Option<u64>,
    limit: u64,
) -> Result<bool> {
    while size.is_none_or(|s| (data.len() as u64) < s) {
        let pos = data.len();
        let room = (pos as u64) < limit;
        let ps = m.pos_state(pos);
        let si = m.state_index(pos);
        if rc.bit_at(&mut m.is_match, si)? == 0 {
            if !room {
                return Err(rc.error("data within the size limit"));
            }
            let prev = data.last().copied().unwrap_or(0);
            let base = m.literal_base(pos, prev);
            let probs = m
                .literal
                .get_mut(base..base + LITERAL_CODER_LEN)
                .ok_or(rc.error("a literal context"))?;
            let mut sym = 1usize;
            if m.state >= 7 {
                let at = pos.wrapping_sub(m.reps[0] as usize + 1);
                let mut match_byte = usize::from(*data.get(at).ok_or(rc.error("a distance"))?);
                loop {
                    let match_bit = (match_byte >> 7) & 1;
                    match_byte <<= 1;
                    let bit = rc.bit_at(probs, 0x100 + (match_bit << 8) + sym)? as usize;
                    sym = (sym << 1) | bit;
                    if match_bit != bit || sym >= 0x100 {
                        break;
                    }
                }
            }
            while sym < 0x100 {
                sym = (sym << 1) | rc.bit_at(probs, sym)? as usize;
            }
            data.push((sym - 0x100) as u8);
            sink.literal();
            m.after_literal();
            continue;
        }
        let len;
        if rc.bit_at(&mut m.is_rep, m.state)? == 0 {
            len = rc.len(&mut m.match_len, ps)?;
            m.after(7, 10);
            let dist = rc.distance(m, len)?;
            if dist == END_MARKER {
                sink.end();
                return Ok(true);
            }
            m.reps = [dist, m.reps[0], m.reps[1], m.reps[2]];
            sink.matched(len, dist);
        } else {
            let index = if rc.bit_at(&mut m.is_rep_g0, m.state)? == 0 {
                if rc.bit_at(&mut m.is_rep0_long, si)? == 0 {
                    let at = pos.wrapping_sub(m.reps[0] as usize + 1);
                    let byte = match data.get(at) {
                        Some(&b) if room => b,
                        _ => {
                            return Err(
                                rc.error("a repeat inside the data so far, within the size limit")
                            )
                        }
                    };
                    m.after(9, 11);
                    data.push(byte);
                    sink.short_rep();
                    continue;
                }
                0
            } else if rc.bit_at(&mut m.is_rep_g1, m.state)? == 0 {
                1
            } else if rc.bit_at(&mut m.is_rep_g2, m.state)? == 0 {
                2
            } else {
                3
            };
            // Rep `index` moves to the front, the ones before it back.
            if let Some(used) = m.reps.get_mut(..=index) {
                used.rotate_right(1);
            }
            len = rc.len(&mut m.rep_len, ps)?;
            m.after(8, 11);
            sink.rep(index, len);
        }
        let dist = m.reps[0] as usize;
        if dist >= pos {
            return Err(rc.error("a match distance inside the data so far"));
        }
        if (pos + len) as u64 > limit {
            return Err(rc.error("a match that ends within the size limit"));
        }
        let from = pos - dist - 1;
        if dist + 1 >= len {
            data.extend_from_within(from..from + len);
        } else {
            for i in 0..len {
                let b = data.get(from + i).copied().unwrap_or(0);
                data.push(b);
            }
        }
    }
    Ok(false)
}

/// Decodes a raw LZMA stream with parameters `props` into exactly `size`
/// bytes, written to `out` (cleared first; reserve `size` beforehand to
/// keep the allocation fallible). An end marker right after the last byte
/// is allowed (encoders that do not know the size write one); input after
/// it is not read.
///
/// # Errors
/// As [`decode_symbols`], and an end marker before `size` bytes.
pub fn decode(input: &[u8], props: Props, size: usize, out: &mut Vec<u8>) -> Result<()> {
    let mut rc = RangeDecoder::new(input)?;
    let mut m = Model::new(props);
    out.clear();
    let ended = decode_symbols(
        &mut rc,
        &mut m,
        out,
        &mut Discard,
        Some(size as u64),
        size as u64,
    )?;
    if ended {
        return Err(rc.error("the declared number of bytes before the end marker"));
    }
    Ok(())
}

/// Decodes a raw LZMA stream that continues after `dict`: its distances
/// may reach back into `dict` as if the encoder had just produced it (a
/// preset dictionary), and its positions count from `dict.len()`. Writes
/// exactly `size` bytes to `out` (cleared first), without `dict`; reserve
/// `dict.len() + size` beforehand to keep the allocation fallible.
///
/// # Errors
/// As [`decode`].
pub fn decode_after(
    input: &[u8],
    props: Props,
    dict: &[u8],
    size: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let mut rc = RangeDecoder::new(input)?;
    let mut m = Model::new(props);
    out.clear();
    out.extend_from_slice(dict);
    let end = dict.len().saturating_add(size) as u64;
    let ended = decode_symbols(&mut rc, &mut m, out, &mut Discard, Some(end), end)?;
    if ended {
        return Err(rc.error("the declared number of bytes before the end marker"));
    }
    out.drain(..dict.len());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn pos_slots_match_the_format() {
        let slots: Vec<u32> = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 127, 128, 1 << 20]
            .iter()
            .map(|&d| pos_slot(d))
            .collect();
        assert_eq!(slots, [0, 1, 2, 3, 4, 4, 5, 5, 6, 7, 8, 13, 14, 40]);
    }

    #[test]
    fn props_round_trip_through_the_byte() {
        for b in 0..225u8 {
            assert_eq!(Props::from_byte(b).unwrap().to_byte(), b);
        }
        assert_eq!(Props::DEFAULT.to_byte(), 0x5d);
        assert!(Props::from_byte(225).is_none());
    }

    #[test]
    fn short_and_bad_starts_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            decode(&[0, 0, 0], Props::DEFAULT, 1, &mut out)
                .unwrap_err()
                .what,
            "5 bytes of range coder start"
        );
        assert_eq!(
            decode(&[1, 0, 0, 0, 0], Props::DEFAULT, 1, &mut out)
                .unwrap_err()
                .what,
            "range coder start byte 0"
        );
        assert_eq!(
            decode(&[0, 0xff, 0xff, 0xff, 0xff], Props::DEFAULT, 1, &mut out)
                .unwrap_err()
                .what,
            "range coder start value below 0xffffffff"
        );
        // Zero bytes decode to zero bytes whatever follows.
        decode(&[0; 5], Props::DEFAULT, 0, &mut out).unwrap();
        assert!(out.is_empty());
    }
}
