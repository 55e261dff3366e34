//! Tuning aid: how the PATCH streams of a pair compress, per stream, when
//! the new image is cut into segments of a given size.
//!
//! `cargo run --release -p fota-generator --example stream_sizes -- OLD NEW [SEGMENT] [MIN_GAIN]`
use fota_generator::{matcher, plan, suffix};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let old = std::fs::read(&args[1]).unwrap();
    let new = std::fs::read(&args[2]).unwrap();
    let seg: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(1 << 20);
    let idx = suffix::SuffixIndex::build(&old).unwrap();
    let blocks = matcher::find_blocks(
        &idx,
        &new,
        matcher::MatchParams {
            min_gain: args.get(4).map(|s| s.parse().unwrap()).unwrap_or(8),
        },
        &fota_generator::NoProgress,
    );
    let z = |d: &[u8]| {
        if d.is_empty() {
            0
        } else {
            zstd::bulk::compress(d, 19).unwrap().len()
        }
    };
    let mut tot_sep = [0usize; 5];
    let mut tot_raw = [0usize; 5];
    let mut tot_joined = 0;
    for s in (0..new.len()).step_by(seg) {
        let p = plan::patch_streams(&old, &new, &blocks, s, (s + seg).min(new.len()));
        let streams = p.clone().into_streams();
        for i in 0..5 {
            tot_sep[i] += z(&streams[i]);
            tot_raw[i] += streams[i].len();
        }
        tot_joined += z(&p.into_payload());
    }
    println!(
        "raw {:?}\nsep {:?} sum {}\njoined {}",
        tot_raw,
        tot_sep,
        tot_sep.iter().sum::<usize>(),
        tot_joined
    );
}
