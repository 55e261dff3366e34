//! The `tiny` payload: an LZ-class command stream for microcontrollers,
//! whose dictionary is the flash itself (the source image and the output
//! already written), decoded by [`TinyDecoder`] in 64 bytes of state.
//!
//! An op with codec [`crate::Codec::Tiny`] (PATCH or NEW) carries a tiny
//! payload that produces its segment directly (`decoded_len` = `dst_len`):
//! no intermediate buffer, no window in RAM. The payload is a sequence of
//! commands, each a command byte, optional varints, and (for literals and
//! adds) data bytes:
//!
//! ```text
//! command byte: ttt lllll   t = tag (bits 7-5), l = length code (bits 4-0)
//!   length = l + 1                       when l < 31
//!   length = 32 + varint (after the byte) when l = 31
//!
//! tag 0  LITERAL      len                     then len bytes, output as is
//! tag 1  ADD          len                     then len diff bytes: output source[cursor+i] + diff[i]
//! tag 2  ADD_AT       len, zvarint delta      as ADD after cursor += delta
//! tag 3  COPY         len                     output source[cursor..cursor+len)
//! tag 4  COPY_AT      len, zvarint delta      as COPY after cursor += delta
//! tag 5  COPY_OUTPUT  len, varint back-1      output output[produced-back+i], byte by byte
//! tag 6, 7            refused
//! ```
//!
//! The source cursor starts at the op's `dst_offset` (as for PATCH) and
//! moves past every source byte read. Every source read lies inside one of
//! the op's extents (`PatchReadOutsideExtents` otherwise); a NEW op has no
//! extents, so its stream has no source commands. The stream ends exactly
//! when `dst_len` bytes have been produced. `SPEC.md` §5b is the normative
//! text.
//!
//! The decoder is sans-IO: it is handed whatever payload bytes are at hand
//! (commands and varints may straddle chunks) and answers with one
//! [`TinyStep`] at a time; the caller reads flash, writes output and keeps
//! the payload bytes it was told to use.

use crate::error::{Error, Result};
use crate::op::Extent;
use crate::patch::{unzigzag, write_varint, zigzag, MAX_VARINT_LEN};

/// Length codes below this are the length minus one; this one means "a
/// varint follows".
const LEN_EXTENDED: u8 = 31;
/// Shortest length an extended length code stands for.
const EXTENDED_BASE: u64 = LEN_EXTENDED as u64 + 1;

/// Most bytes a command takes before its data: command byte, length
/// varint, argument varint.
pub const MAX_COMMAND_HEADER_LEN: usize = 1 + 2 * MAX_VARINT_LEN;

/// Bytes of [`TinyDecoder`] state (checked at compile time).
pub const DECODER_STATE_LEN: usize = core::mem::size_of::<TinyDecoder>();
const _: () = assert!(DECODER_STATE_LEN <= 64);

/// Command tags (the top three bits of a command byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TinyTag {
    /// `len` literal bytes follow.
    Literal = 0,
    /// `len` diff bytes follow, added to the source at the cursor.
    Add = 1,
    /// A zigzag cursor delta, then `len` diff bytes.
    AddAt = 2,
    /// Copy `len` source bytes at the cursor.
    Copy = 3,
    /// A zigzag cursor delta, then copy `len` source bytes.
    CopyAt = 4,
    /// `back - 1` as a varint: copy `len` bytes of this segment's output.
    CopyOutput = 5,
}

impl TinyTag {
    /// The tag of a command byte, if known.
    pub fn from_u8(v: u8) -> Option<TinyTag> {
        Some(match v {
            0 => TinyTag::Literal,
            1 => TinyTag::Add,
            2 => TinyTag::AddAt,
            3 => TinyTag::Copy,
            4 => TinyTag::CopyAt,
            5 => TinyTag::CopyOutput,
            _ => return None,
        })
    }

    /// Whether a varint argument follows the length.
    fn has_arg(self) -> bool {
        matches!(self, TinyTag::AddAt | TinyTag::CopyAt | TinyTag::CopyOutput)
    }
}

/// One command, for encoders: [`TinyCommand::encode`] writes its header
/// (literal and add data follow it on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyCommand {
    /// `len` literal bytes follow.
    Literal {
        /// Bytes of output (at least 1).
        len: u64,
    },
    /// Move the cursor by `delta`, then `len` diff bytes follow.
    AddSource {
        /// Cursor move (0 writes the shorter ADD form).
        delta: i64,
        /// Bytes of output (at least 1).
        len: u64,
    },
    /// Move the cursor by `delta`, then copy `len` source bytes.
    CopySource {
        /// Cursor move (0 writes the shorter COPY form).
        delta: i64,
        /// Bytes of output (at least 1).
        len: u64,
    },
    /// Copy `len` bytes starting `back` bytes before the end of the output.
    CopyOutput {
        /// Distance back into this segment's output (at least 1).
        back: u64,
        /// Bytes of output (at least 1).
        len: u64,
    },
}

impl TinyCommand {
    /// Writes the command's header into `buf` and returns its length;
    /// `None` when `len` or `back` is 0.
    pub fn encode(&self, buf: &mut [u8; MAX_COMMAND_HEADER_LEN]) -> Option<usize> {
        let (tag, len, arg) = match *self {
            TinyCommand::Literal { len } => (TinyTag::Literal, len, None),
            TinyCommand::AddSource { delta: 0, len } => (TinyTag::Add, len, None),
            TinyCommand::AddSource { delta, len } => (TinyTag::AddAt, len, Some(zigzag(delta))),
            TinyCommand::CopySource { delta: 0, len } => (TinyTag::Copy, len, None),
            TinyCommand::CopySource { delta, len } => (TinyTag::CopyAt, len, Some(zigzag(delta))),
            TinyCommand::CopyOutput { back, len } => {
                (TinyTag::CopyOutput, len, Some(back.checked_sub(1)?))
            }
        };
        let code = len.checked_sub(1)?;
        let mut n = 1;
        let mut scratch = [0u8; MAX_VARINT_LEN];
        let mut put = |v: u64, n: &mut usize, buf: &mut [u8; MAX_COMMAND_HEADER_LEN]| {
            let k = write_varint(v, &mut scratch);
            for (dst, src) in buf.iter_mut().skip(*n).zip(scratch.iter().take(k)) {
                *dst = *src;
            }
            *n += k;
        };
        let first = if code < u64::from(LEN_EXTENDED) {
            code as u8
        } else {
            put(len - EXTENDED_BASE, &mut n, buf);
            LEN_EXTENDED
        };
        buf[0] = ((tag as u8) << 5) | first;
        if let Some(arg) = arg {
            put(arg, &mut n, buf);
        }
        Some(n)
    }

    /// Bytes of output the command produces.
    pub fn len(&self) -> u64 {
        match *self {
            TinyCommand::Literal { len }
            | TinyCommand::AddSource { len, .. }
            | TinyCommand::CopySource { len, .. }
            | TinyCommand::CopyOutput { len, .. } => len,
        }
    }

    /// Whether the command produces nothing (not encodable).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the caller does next, as told by [`TinyDecoder::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TinyStep {
    /// Everything in `input` was consumed (`consumed == input.len()`); call
    /// again with more bytes.
    NeedInput,
    /// Output the literal bytes `input[consumed - len .. consumed]`.
    Literal {
        /// Bytes of output (at least 1, at most the input given).
        len: usize,
    },
    /// Output source bytes `[src, src + len)`.
    CopySource {
        /// Source offset of the first byte.
        src: u64,
        /// Bytes of output (at least 1).
        len: u64,
    },
    /// Output `source[src + i]` wrapping_add `input[consumed - len + i]` for
    /// `i` in `0..len` (sparse diffs: zero runs are `CopySource` steps).
    AddSource {
        /// Source offset of the first byte.
        src: u64,
        /// Bytes of output (at least 1, at most the input given).
        len: usize,
    },
    /// Output `output[produced - back + i]` for `i` in `0..len`, byte by
    /// byte (overlap allowed, like LZ77); `1 <= back <= produced`, where
    /// `produced` is the output before this step.
    CopyOutput {
        /// Distance back from the end of the output.
        back: u64,
        /// Bytes of output (at least 1).
        len: u64,
    },
    /// All `dst_len` bytes were produced and the stream ended; the caller
    /// checks that the payload has no bytes left ([`TinyDecoder::finish`]).
    End,
}

/// Where the decoder is inside the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expecting a command byte.
    Command,
    /// Reading the extended length varint.
    Length,
    /// Reading the argument varint.
    Argument,
    /// Passing literal or diff bytes (`len` left).
    Data,
    /// A refusal was returned; every later call refuses too.
    Failed,
}

/// Streaming decoder of one op's tiny payload. See the module docs and
/// `SPEC.md` §5b.
///
/// Holds no buffer: 64 bytes of state, `Copy`, so an agent can persist or
/// restart it freely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TinyDecoder {
    dst_len: u64,
    produced: u64,
    cursor: u64,
    /// Payload bytes consumed so far.
    offset: u64,
    /// Payload offset of the current command's byte.
    command_at: u64,
    /// Length of the current command; in [`Phase::Data`], bytes left.
    len: u64,
    /// Varint being read.
    acc: u64,
    op_index: u32,
    /// Bytes of the varint being read so far.
    varint_bytes: u8,
    tag: TinyTag,
    phase: Phase,
}

impl TinyDecoder {
    /// Decoder for op `op_index` writing `dst_len` bytes at target offset
    /// `dst_offset` (the source cursor starts there, as for PATCH).
    pub fn new(op_index: u32, dst_offset: u64, dst_len: u64) -> Self {
        TinyDecoder {
            dst_len,
            produced: 0,
            cursor: dst_offset,
            offset: 0,
            command_at: 0,
            len: 0,
            acc: 0,
            op_index,
            varint_bytes: 0,
            tag: TinyTag::Literal,
            phase: Phase::Command,
        }
    }

    /// Output bytes produced so far (those of the last step included).
    pub fn produced(&self) -> u64 {
        self.produced
    }

    /// Payload bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.offset
    }

    /// Index of the op, for error reports.
    pub fn op_index(&self) -> u32 {
        self.op_index
    }

    /// Whether every output byte was produced and no command is open: the
    /// next [`step`](Self::step) returns [`TinyStep::End`].
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Command && self.produced == self.dst_len
    }

    /// Checks the payload ended at the right place, once all of its
    /// `payload_len` bytes were passed to [`step`](Self::step) (as far as it
    /// consumed them).
    ///
    /// # Errors
    /// `PatchMalformed` when the payload ended before the segment was
    /// complete (or inside a command), or when bytes follow the command that
    /// completed it.
    pub fn finish(&self, payload_len: u64) -> Result<()> {
        if self.phase == Phase::Failed {
            return Err(self.malformed(self.offset, "no use after a refusal"));
        }
        if !self.is_done() {
            return Err(self.malformed(
                self.offset,
                "more commands: the payload ends before the segment is complete",
            ));
        }
        if payload_len != self.offset {
            return Err(self.malformed(
                self.offset,
                "no bytes after the command that completes the segment",
            ));
        }
        Ok(())
    }

    fn malformed(&self, offset: u64, what: &'static str) -> Error {
        Error::PatchMalformed {
            op_index: self.op_index,
            offset,
            what,
        }
    }

    /// Refuses at the current command and poisons the decoder.
    fn fail<T>(&mut self, what: &'static str) -> Result<T> {
        self.phase = Phase::Failed;
        Err(self.malformed(self.command_at, what))
    }

    /// Decodes the next step from `input`, the payload bytes available now
    /// (possibly a part of the payload: commands and varints may straddle
    /// calls, the decoder keeps the partial state). Returns the input bytes
    /// consumed and the step. Source reads are checked against `extents`;
    /// output never exceeds `dst_len`.
    ///
    /// # Errors
    /// `PatchMalformed` (offset = payload offset of the command concerned)
    /// for a malformed stream, `PatchReadOutsideExtents` for a source read
    /// outside every extent. After an error every call refuses.
    pub fn step(&mut self, input: &[u8], extents: &[Extent]) -> Result<(usize, TinyStep)> {
        let mut pos = 0usize;
        loop {
            match self.phase {
                Phase::Failed => return Err(self.malformed(self.offset, "no use after a refusal")),
                Phase::Command => {
                    if self.produced == self.dst_len {
                        return Ok((pos, TinyStep::End));
                    }
                    let Some(&byte) = input.get(pos) else {
                        return Ok((pos, TinyStep::NeedInput));
                    };
                    pos += 1;
                    self.command_at = self.offset;
                    self.offset = self.offset.saturating_add(1);
                    let Some(tag) = TinyTag::from_u8(byte >> 5) else {
                        return self.fail("a known command tag (0 to 5)");
                    };
                    self.tag = tag;
                    let code = byte & 0x1f;
                    self.acc = 0;
                    self.varint_bytes = 0;
                    if code == LEN_EXTENDED {
                        self.len = EXTENDED_BASE;
                        self.phase = Phase::Length;
                    } else {
                        self.len = u64::from(code) + 1;
                        if let Some(step) = self.length_known(extents)? {
                            return Ok((pos, step));
                        }
                    }
                }
                Phase::Length | Phase::Argument => {
                    let Some(&byte) = input.get(pos) else {
                        return Ok((pos, TinyStep::NeedInput));
                    };
                    pos += 1;
                    self.offset = self.offset.saturating_add(1);
                    let Some(v) = self.varint_byte(byte)? else {
                        continue;
                    };
                    if self.phase == Phase::Length {
                        let Some(len) = self.len.checked_add(v) else {
                            return self.fail("a command length that fits 64 bits");
                        };
                        self.len = len;
                        if let Some(step) = self.length_known(extents)? {
                            return Ok((pos, step));
                        }
                    } else if let Some(step) = self.execute(v, extents)? {
                        return Ok((pos, step));
                    }
                }
                Phase::Data => {
                    let available = input.len().saturating_sub(pos);
                    if available == 0 {
                        return Ok((pos, TinyStep::NeedInput));
                    }
                    // Bounded by `available`, so it fits usize.
                    let n = self.len.min(available as u64) as usize;
                    pos += n;
                    self.offset = self.offset.saturating_add(n as u64);
                    self.len -= n as u64;
                    self.produced += n as u64;
                    if self.len == 0 {
                        self.phase = Phase::Command;
                    }
                    if self.tag == TinyTag::Literal {
                        return Ok((pos, TinyStep::Literal { len: n }));
                    }
                    let src = self.cursor;
                    // Inside the extent checked for the whole command.
                    self.cursor = src.saturating_add(n as u64);
                    return Ok((pos, TinyStep::AddSource { src, len: n }));
                }
            }
        }
    }

    /// Takes one varint byte; `Some(value)` when the varint is complete.
    fn varint_byte(&mut self, byte: u8) -> Result<Option<u64>> {
        let bits = u64::from(byte & 0x7f);
        let last = self.varint_bytes == (MAX_VARINT_LEN - 1) as u8;
        if last && (bits > 1 || byte & 0x80 != 0) {
            return self.fail("a varint that fits 64 bits (at most 10 bytes)");
        }
        // varint_bytes <= 9 here, so the shift is at most 63.
        self.acc |= bits << (7 * u32::from(self.varint_bytes));
        self.varint_bytes += 1;
        if byte & 0x80 != 0 {
            return Ok(None);
        }
        if self.varint_bytes > 1 && byte == 0 {
            return self.fail("a minimal varint (no trailing zero group)");
        }
        let v = self.acc;
        self.acc = 0;
        self.varint_bytes = 0;
        Ok(Some(v))
    }

    /// The command's length is known: check it, then read the argument or
    /// run the command (an argument-less one has delta 0).
    fn length_known(&mut self, extents: &[Extent]) -> Result<Option<TinyStep>> {
        if self.len > self.dst_len.saturating_sub(self.produced) {
            return self.fail("a command that ends within the segment");
        }
        if self.tag.has_arg() {
            self.phase = Phase::Argument;
            return Ok(None);
        }
        self.execute(0, extents)
    }

    /// Runs a command whose header is complete; returns its step, if it
    /// has one now (Add and Literal produce steps as data arrives).
    fn execute(&mut self, arg: u64, extents: &[Extent]) -> Result<Option<TinyStep>> {
        let len = self.len;
        match self.tag {
            TinyTag::CopyOutput => {
                let back = arg.saturating_add(1);
                if back > self.produced {
                    return self.fail("a back reference into the output already produced");
                }
                self.produced += len;
                self.phase = Phase::Command;
                Ok(Some(TinyStep::CopyOutput { back, len }))
            }
            TinyTag::Literal => {
                self.phase = Phase::Data;
                Ok(None)
            }
            TinyTag::Add | TinyTag::AddAt | TinyTag::Copy | TinyTag::CopyAt => {
                // Add and Copy have no argument: `arg` is 0, delta 0.
                let delta = unzigzag(arg);
                let Some(src) = self.cursor.checked_add_signed(delta) else {
                    return self.fail("a source delta that keeps the cursor in range");
                };
                if src.checked_add(len).is_none() {
                    return self.fail("a source range that does not overflow");
                }
                if !extents.iter().any(|e| e.contains(src, len)) {
                    self.phase = Phase::Failed;
                    return Err(Error::PatchReadOutsideExtents {
                        op_index: self.op_index,
                        src_offset: src,
                        len,
                    });
                }
                if matches!(self.tag, TinyTag::Copy | TinyTag::CopyAt) {
                    self.cursor = src + len;
                    self.produced += len;
                    self.phase = Phase::Command;
                    Ok(Some(TinyStep::CopySource { src, len }))
                } else {
                    self.cursor = src;
                    self.phase = Phase::Data;
                    Ok(None)
                }
            }
        }
    }
}
