//! Host apply throughput (bytes of the target image per second) of a
//! package for the bench pair made once in setup: signature, hash chain,
//! source and segment hashes, zstd and the PATCH decoder, all included.

use std::time::Duration;

use criterion::{Criterion, Throughput};
use fota_benches::{bench_key, bench_pair};
use fota_generator::{apply, diff, DeviceIdentity, DiffOptions};

fn bench_apply(c: &mut Criterion) {
    let pair = bench_pair().expect("bench pair");
    let key = bench_key();
    let opts = DiffOptions {
        self_check: false,
        ..DiffOptions::default()
    };
    let package = diff(&pair.old, &pair.new, &key, &opts)
        .expect("diff")
        .package;
    let trusted = [key.verifying_key()];
    let device = DeviceIdentity::default();
    let target = apply(&pair.old, &package, &trusted, &device).expect("apply");
    assert!(
        target == pair.new,
        "package does not reproduce the new image"
    );
    eprintln!(
        "apply: pair {} (old {} B, new {} B), package {} B",
        pair.name,
        pair.old.len(),
        pair.new.len(),
        package.len()
    );
    let mut group = c.benchmark_group(format!("apply/{}", pair.name));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .throughput(Throughput::Bytes(pair.new.len() as u64));
    group.bench_function("host", |b| {
        b.iter(|| apply(&pair.old, &package, &trusted, &device).expect("apply"));
    });
    group.finish();
}

// `criterion_group!` makes an undocumented `pub fn`, which the workspace's
// `missing_docs` lint flags; this is what the two macros expand to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_apply(&mut c);
    c.final_summary();
}
