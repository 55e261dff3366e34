//! `fota_generator::diff` throughput (bytes of the new image per second) on
//! the bench pair, with one and two worker threads, self-check off.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use fota_benches::{bench_key, bench_pair};
use fota_generator::{diff, DiffOptions};

fn bench_diff(c: &mut Criterion) {
    let pair = bench_pair().expect("bench pair");
    let key = bench_key();
    eprintln!(
        "diff: pair {} (old {} B, new {} B)",
        pair.name,
        pair.old.len(),
        pair.new.len()
    );
    let mut group = c.benchmark_group(format!("diff/{}", pair.name));
    // One diff of a 4 MiB image takes seconds: one iteration per sample.
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(pair.new.len() as u64));
    for threads in [1, 2] {
        let opts = DiffOptions {
            threads,
            self_check: false,
            ..DiffOptions::default()
        };
        let out = diff(&pair.old, &pair.new, &key, &opts).expect("diff");
        eprintln!(
            "diff: threads {threads}: package {} B ({:.2} % of new)",
            out.package.len(),
            100.0 * out.package.len() as f64 / pair.new.len() as f64
        );
        group.bench_with_input(BenchmarkId::new("threads", threads), &opts, |b, opts| {
            b.iter(|| diff(&pair.old, &pair.new, &key, opts).expect("diff"));
        });
    }
    group.finish();
}

// `criterion_group!` makes an undocumented `pub fn`, which the workspace's
// `missing_docs` lint flags; this is what the two macros expand to.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_diff(&mut c);
    c.final_summary();
}
