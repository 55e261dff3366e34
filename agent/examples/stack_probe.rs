//! Peak-stack probe for R4, run under valgrind (an x86_64 proxy: no thumb
//! target can be built here):
//!
//! ```text
//! valgrind --tool=massif --stacks=yes --massif-out-file=m.out \
//!     target/release/examples/stack_probe apply OLD PKG PUB
//! ms_print m.out | grep -m1 'stacks'   # or take the peak snapshot
//! ```
//!
//! Modes: `noop` (the process baseline), `verify` (signature check only),
//! `apply` (a whole in-place update into a simulated flash from OLD).
//! PUB is a public key from `fota keygen`; PKG an in-place package.

use std::process::ExitCode;

use fota_agent::sim::{Geometry, SimFlash};
use fota_agent::{apply, block_on, Buffers, Config, Flash, Layout, Range, SlicePackage, Slots};
use fota_format::{Label, Manifest, Package};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("noop");
    if mode == "noop" {
        return ExitCode::SUCCESS;
    }
    let [old, pkg] = [2, 3].map(|i| std::fs::read(&args[i]).expect("read input"));
    let key = fota_generator::keys::read_public(args[4].as_ref()).expect("public key");
    let keys = [key];
    let parsed = Package::parse(&pkg).expect("package");
    if mode == "verify" {
        parsed.verify(&keys).expect("signature");
        return ExitCode::SUCCESS;
    }
    let m: Manifest = parsed.manifest_unverified().expect("manifest");
    let erase = u64::from(m.segment_size);
    let image = m.source_size.max(m.target_size).div_ceil(erase) * erase;
    let scratch = u64::from(m.scratch_slots) * erase;
    let layout = Layout {
        slots: Slots::InPlace {
            image: Range::new(0, image),
            scratch: Range::new(image, scratch),
        },
        journal: Range::new(image + scratch, 2 * erase),
    };
    let blocks = ((image + scratch) / erase) as usize + 2;
    let mut flash = SimFlash::new(Geometry::uniform(blocks, erase, 4, 1));
    flash.load(0, &old);
    let config = Config {
        layout,
        trusted: &keys,
        device_class: Label::EMPTY,
        security_counter: 0,
    };
    let mut work = [0u8; 1024];
    assert!(work.len() >= fota_agent::work_len(4, 1));
    let (mut w, mut o, mut s) = ([0u8; 128], [0u8; 128], [0u32; 64]);
    let _ = flash.write_size();
    let r = block_on(apply(
        &mut flash,
        &mut SlicePackage(&pkg),
        &config,
        Buffers {
            work: &mut work,
            written: &mut w,
            overwritten: &mut o,
            slots: &mut s,
        },
    ));
    match r {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
