//! Prints how the patch streams of a pair compress, whole-file: a tuning aid.
use fota_generator::{matcher, suffix};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let old = std::fs::read(&args[1]).unwrap();
    let new = std::fs::read(&args[2]).unwrap();
    let gain: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(8);
    let idx = suffix::SuffixIndex::build(&old, 2).unwrap();
    let blocks = matcher::find_blocks(&idx, &new, matcher::MatchParams { min_gain: gain });
    let mut diff = Vec::new();
    let mut extra = Vec::new();
    let mut pos = 0;
    for b in &blocks {
        extra.extend_from_slice(&new[pos..b.new]);
        diff.extend(
            new[b.new..b.new + b.len]
                .iter()
                .zip(&old[b.old..b.old + b.len])
                .map(|(n, o)| n.wrapping_sub(*o)),
        );
        pos = b.new + b.len;
    }
    extra.extend_from_slice(&new[pos..]);
    let nz = diff.iter().filter(|&&d| d != 0).count();
    let z = |d: &[u8], l| zstd::bulk::compress(d, l).unwrap().len();
    println!(
        "blocks {} diff {} (nonzero {}) extra {}",
        blocks.len(),
        diff.len(),
        nz,
        extra.len()
    );
    println!(
        "zstd19: diff {} extra {}  zstd22: diff {} extra {}",
        z(&diff, 19),
        z(&extra, 19),
        z(&diff, 22),
        z(&extra, 22)
    );
    let mut both = diff.clone();
    both.extend_from_slice(&extra);
    println!("together19 {}", z(&both, 19));
    let (runs, vals) = sparse(&diff);
    println!(
        "sparse: runs {} -> {}  vals {} -> {}  total19 {}",
        runs.len(),
        z(&runs, 19),
        vals.len(),
        z(&vals, 19),
        z(&runs, 19) + z(&vals, 19)
    );
    if let Some(dir) = std::env::var_os("DUMP") {
        let d = std::path::PathBuf::from(dir);
        std::fs::write(d.join("runs"), &runs).unwrap();
        std::fs::write(d.join("vals"), &vals).unwrap();
        std::fs::write(d.join("diff"), &diff).unwrap();
        std::fs::write(d.join("extra"), &extra).unwrap();
    }
    let mut rv = runs.clone();
    rv.extend_from_slice(&vals);
    println!("sparse joined19 {}", z(&rv, 19));
}

#[allow(dead_code)]
fn sparse(diff: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut runs = Vec::new();
    let mut vals = Vec::new();
    let mut zeros = 0u64;
    for &d in diff {
        if d == 0 {
            zeros += 1;
        } else {
            let mut v = zeros;
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    runs.push(b);
                    break;
                }
                runs.push(b | 0x80);
            }
            vals.push(d);
            zeros = 0;
        }
    }
    (runs, vals)
}
