//! The PATCH decoder alone, and zstd decompression of the same payload
//! alone, on one PATCH payload covering the whole bench pair as a single
//! segment. Both report bytes of the target image per second, so their
//! times add up to the per-byte cost of a PATCH op without hashing.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use fota_benches::{bench_pair, decode_patch, whole_image_patch};
use fota_generator::DEFAULT_LEVEL;

fn bench_decode(c: &mut Criterion) {
    let pair = bench_pair().expect("bench pair");
    let payload = whole_image_patch(&pair.old, &pair.new).expect("patch");
    let compressed = zstd::bulk::compress(&payload, DEFAULT_LEVEL).expect("zstd");
    let mut out = Vec::with_capacity(pair.new.len());
    decode_patch(&pair.old, &payload, pair.new.len(), &mut out).expect("decode");
    assert!(out == pair.new, "patch does not reproduce the new image");
    eprintln!(
        "decode: pair {} (old {} B, new {} B), payload {} B, zstd -{DEFAULT_LEVEL} {} B",
        pair.name,
        pair.old.len(),
        pair.new.len(),
        payload.len(),
        compressed.len()
    );

    let mut group = c.benchmark_group(format!("decode/{}", pair.name));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(pair.new.len() as u64));
    group.bench_function("patch", |b| {
        b.iter(|| {
            decode_patch(&pair.old, &payload, pair.new.len(), &mut out).expect("decode");
            std::hint::black_box(out.len())
        });
    });
    let mut dctx = zstd::bulk::Decompressor::new().expect("zstd");
    let mut raw = Vec::with_capacity(payload.len());
    group.bench_function("zstd", |b| {
        b.iter(|| {
            raw.clear();
            dctx.decompress_to_buffer(&compressed, &mut raw)
                .expect("unzstd");
            std::hint::black_box(raw.len())
        });
    });
    group.finish();
}

// `criterion_group!` makes an undocumented `pub fn`, which the workspace's
// `missing_docs` lint flags; this is what the two macros expand to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_decode(&mut c);
    c.final_summary();
}
