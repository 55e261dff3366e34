//! Producing a NEW or PATCH segment from a coded payload.
//!
//! `tiny` payloads stream: the decoder works on one package chunk at a
//! time and reads its dictionary (source and output so far) back from
//! flash. `zstd` payloads and stored PATCH payloads are decoded whole in
//! memory, so they need the `std` feature (application processors).

use fota_format::op::Codec;
use fota_format::tiny::{TinyDecoder, TinyStep};
use fota_format::Error as FormatError;

use crate::apply::{OpView, Out, Payload, ReadOp, Sources, Work};
use crate::error::Result;
use crate::flash::Flash;
use crate::source::PackageSource;

/// Runs op `op`'s payload into `out`.
pub(crate) async fn run<F: Flash, P: PackageSource>(
    flash: &mut F,
    package: &mut P,
    src: &Sources<'_>,
    op: OpView<'_>,
    payload: &mut Payload,
    out: &mut Out,
    work: &mut Work<'_>,
) -> Result<()> {
    match op.op.header.codec {
        Codec::Tiny => tiny(flash, package, src, op, payload, out, work).await,
        Codec::Stored | Codec::Zstd => in_memory(flash, package, src, op, payload, out, work).await,
    }
}

async fn tiny<F: Flash, P: PackageSource>(
    flash: &mut F,
    package: &mut P,
    src: &Sources<'_>,
    op: OpView<'_>,
    payload: &mut Payload,
    out: &mut Out,
    work: &mut Work<'_>,
) -> Result<()> {
    let OpView { op, extents } = op;
    let h = &op.header;
    let mut decoder = TinyDecoder::new(op.index, h.dst_offset, h.dst_len.into());
    // The current package chunk is work.pkg[start..have].
    let (mut start, mut have) = (0usize, 0usize);
    loop {
        let input = work.pkg.get(start..have).unwrap_or(&[]);
        let (used, step) = decoder.step(input, extents)?;
        start += used;
        match step {
            TinyStep::NeedInput => match payload.next(package, work.pkg).await? {
                Some(n) => (start, have) = (0, n),
                None => break,
            },
            TinyStep::End => break,
            TinyStep::Literal { len } => {
                let bytes = work.pkg.get(start - len..start).unwrap_or(&[]);
                out.push(flash, work.out, bytes).await?;
            }
            TinyStep::CopySource { src: at, len } => {
                let mut pos = 0u64;
                while pos < len {
                    let n = (work.read.len() as u64).min(len - pos) as usize;
                    let part = work.read.get_mut(..n).unwrap_or(&mut []);
                    src.read(flash, at + pos, part, op.index).await?;
                    out.push(flash, work.out, part).await?;
                    pos += n as u64;
                }
            }
            TinyStep::AddSource { src: at, len } => {
                // len is at most the input chunk, so it fits work.read.
                let part = work.read.get_mut(..len).unwrap_or(&mut []);
                src.read(flash, at, part, op.index).await?;
                let diffs = work.pkg.get(start - len..start).unwrap_or(&[]);
                for (b, d) in part.iter_mut().zip(diffs) {
                    *b = b.wrapping_add(*d);
                }
                out.push(flash, work.out, part).await?;
            }
            TinyStep::CopyOutput { back, len } => {
                copy_output(flash, out, work, back, len).await?;
            }
        }
    }
    decoder.finish(h.payload_len.into())?;
    Ok(())
}

/// LZ77 copy from the segment's own output, `back` bytes behind, with
/// overlap: a short period is read once and repeated.
async fn copy_output<F: Flash>(
    flash: &mut F,
    out: &mut Out,
    work: &mut Work<'_>,
    back: u64,
    len: u64,
) -> Result<()> {
    let chunk = work.read.len() as u64;
    let from = out.produced().saturating_sub(back);
    if back < len && back <= chunk / 2 {
        let period = back as usize;
        let pattern = work.read.get_mut(..period).unwrap_or(&mut []);
        out.read_back(flash, work.out, from, pattern).await?;
        let span = (chunk / back * back) as usize;
        for i in period..span {
            if let Some(b) = work.read.get(i - period).copied() {
                if let Some(d) = work.read.get_mut(i) {
                    *d = b;
                }
            }
        }
        let mut left = len;
        while left > 0 {
            let n = (span as u64).min(left) as usize;
            out.push(flash, work.out, work.read.get(..n).unwrap_or(&[]))
                .await?;
            left -= n as u64;
        }
        return Ok(());
    }
    let mut pos = 0u64;
    while pos < len {
        // Never past what is already produced: at most `back` at a time.
        let n = chunk.min(len - pos).min(back) as usize;
        let part = work.read.get_mut(..n).unwrap_or(&mut []);
        out.read_back(flash, work.out, from + pos, part).await?;
        out.push(flash, work.out, part).await?;
        pos += n as u64;
    }
    Ok(())
}

#[cfg(not(feature = "std"))]
async fn in_memory<F: Flash, P: PackageSource>(
    _flash: &mut F,
    _package: &mut P,
    _src: &Sources<'_>,
    op: OpView<'_>,
    _payload: &mut Payload,
    _out: &mut Out,
    _work: &mut Work<'_>,
) -> Result<()> {
    Err(FormatError::PayloadCodec {
        op_index: op.op.index,
        what: "zstd and stored PATCH payloads need the agent's std feature",
    }
    .into())
}

#[cfg(feature = "std")]
async fn in_memory<F: Flash, P: PackageSource>(
    flash: &mut F,
    package: &mut P,
    src: &Sources<'_>,
    op: OpView<'_>,
    payload: &mut Payload,
    out: &mut Out,
    work: &mut Work<'_>,
) -> Result<()> {
    use fota_format::op::OpKind;
    use fota_format::{PatchDecoder, PatchStep};
    use std::vec::Vec;
    let OpView { op, extents } = op;
    let h = &op.header;
    let mut coded = Vec::with_capacity(payload.remaining() as usize);
    while let Some(n) = payload.next(package, work.pkg).await? {
        coded.extend_from_slice(work.pkg.get(..n).unwrap_or(&[]));
    }
    let decoded = match h.codec {
        Codec::Zstd => zstd_decode(op, &coded)?,
        _ => coded,
    };
    if decoded.len() != h.decoded_len as usize {
        return Err(FormatError::PayloadCodec {
            op_index: op.index,
            what: "payload decodes to another length than declared",
        }
        .into());
    }
    if h.kind == OpKind::New {
        return out.push(flash, work.out, &decoded).await;
    }
    let mut decoder =
        PatchDecoder::new(op.index, &decoded, h.dst_offset, h.dst_len.into(), extents)?;
    while let Some(step) = decoder.next() {
        match step? {
            PatchStep::Add { src: at, len } => {
                let mut pos = 0u64;
                while pos < len {
                    let n = (work.read.len() as u64).min(len - pos) as usize;
                    let part = work.read.get_mut(..n).unwrap_or(&mut []);
                    src.read(flash, at + pos, part, op.index).await?;
                    decoder.add_diff(part)?;
                    out.push(flash, work.out, part).await?;
                    pos += n as u64;
                }
            }
            PatchStep::Literal(bytes) => out.push(flash, work.out, bytes).await?,
        }
    }
    Ok(())
}

#[cfg(feature = "zstd")]
fn zstd_decode(op: &ReadOp, coded: &[u8]) -> Result<std::vec::Vec<u8>> {
    Ok(fota_format::zstd_payload::decode(
        op.index,
        coded,
        op.header.decoded_len as usize,
    )?)
}

#[cfg(all(feature = "std", not(feature = "zstd")))]
fn zstd_decode(op: &ReadOp, _coded: &[u8]) -> Result<std::vec::Vec<u8>> {
    Err(FormatError::PayloadCodec {
        op_index: op.index,
        what: "zstd payloads need the agent's zstd feature",
    }
    .into())
}
