//! `fota sim`: the agent's power-cut campaign on one update, in a
//! simulated flash of the given geometry.

use anyhow::{anyhow, bail, Context, Result};
use fota_agent::sim::{CampaignReport, CutVariant, Geometry, Setup};
use fota_agent::{Config, Layout};
use fota_format::{Label, Manifest, Mode};
use fota_generator::keys;

use crate::args::{ModeArg, SimArgs};

/// Runs `fota sim`.
pub fn run(a: SimArgs) -> Result<()> {
    let trusted = [keys::read_public(&a.pubkey)?];
    let device_class = Label::new(a.device.device_class.as_deref().unwrap_or(""))
        .with_context(|| format!("--device-class {:?}", a.device.device_class))?;
    let package = std::fs::read(&a.package).with_context(|| a.package.display().to_string())?;
    let old = std::fs::read(&a.old).with_context(|| a.old.display().to_string())?;
    let mut source = fota_agent::SlicePackage(&package);
    let m = crate::flash::read_manifest_of(&mut source, &trusted, &a.package)?;
    let want = match a.mode {
        Some(ModeArg::Ab) => Some(Mode::AB),
        Some(ModeArg::InPlace) => Some(Mode::InPlace),
        None => None,
    };
    if want.is_some_and(|w| w != m.mode) {
        bail!(
            "{}: --mode {:?} but the package is {}",
            a.package.display(),
            a.mode,
            mode_name(m.mode)
        );
    }
    let geometry = geometry(&a, &m, old.len() as u64)?;
    let config = Config {
        layout: geometry.1,
        trusted: &trusted,
        device_class,
        security_counter: a.device.security_counter,
    };
    // The expected image is what a clean run produces: the agent checks it
    // against the manifest's target sha256 before it says finished.
    let probe = Setup {
        geometry: geometry.0.clone(),
        initial: vec![(config.layout.source().start, old.clone())],
        layout: config.layout,
        package: &package,
        config,
        expected: &[],
    };
    let mut flash = probe.fresh_flash();
    probe.run(&mut flash).map_err(|e| {
        anyhow!(
            "{}: the update fails without any cut: {e}",
            a.package.display()
        )
    })?;
    let t = config.layout.target();
    let expected = flash.bytes()[t.start as usize..(t.start + m.target_size) as usize].to_vec();
    let setup = Setup {
        expected: &expected,
        ..probe
    };
    println!(
        "sim: {} update, {} ops, segments of {} B; flash {} blocks of {} B, write {} B, read {} B, erased {:#04x}",
        mode_name(m.mode),
        m.op_count,
        m.segment_size,
        setup.geometry.blocks.len(),
        a.erase_size,
        a.write_size,
        a.read_size,
        a.erased
    );
    if let Some(id) = &a.replay {
        return match setup.replay(id) {
            Ok(r) => {
                println!("replay {id}: bit-exact after resume ({r:?})");
                Ok(())
            }
            Err(why) => Err(anyhow!("replay {id}: {why}")),
        };
    }
    let (_, trace) = setup.golden().map_err(|e| anyhow!("clean run: {e}"))?;
    let stride = match a.cuts.as_str() {
        "all" => 1,
        n => {
            let n: usize = n
                .parse()
                .map_err(|_| anyhow!("--cuts {n:?}: `all` or a number"))?;
            (trace.len() / n.max(1)).max(1)
        }
    };
    let single = setup
        .single_cuts("sim", stride, a.seed)
        .map_err(|e| anyhow!("{e}"))?;
    print_report("single cuts", &single);
    let mut failures = single.failures.len();
    if a.random > 0 {
        let random = setup
            .random_cuts("sim", a.random, a.seed)
            .map_err(|e| anyhow!("{e}"))?;
        print_report(&format!("{} random multi-cut runs", a.random), &random);
        failures += random.failures.len();
    }
    if failures > 0 {
        bail!("{failures} cut runs did not end bit-exact (replay with --replay ID)");
    }
    Ok(())
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::AB => "A/B",
        Mode::InPlace => "in-place",
    }
}

/// A flash just large enough for the update ([`fota_agent::sim::fit`]),
/// after checking the old image is the package's source.
fn geometry(a: &SimArgs, m: &Manifest, old_len: u64) -> Result<(Geometry, Layout)> {
    if old_len != m.source_size {
        bail!(
            "{}: {old_len} bytes, but the package applies to a {}-byte image",
            a.old.display(),
            m.source_size
        );
    }
    fota_agent::sim::fit(m, a.erase_size, a.write_size, a.read_size, a.erased)
        .map_err(|why| anyhow!("{why} (--erase-size, --write-size, --read-size, --erased)"))
}

fn print_report(what: &str, r: &CampaignReport) {
    println!("{what}: clean run {} programs and erases", r.clean_ops);
    for (v, n) in CutVariant::ALL.iter().zip(r.cuts_tried) {
        println!("  cuts {:<13} {n}", v.name());
    }
    println!("  failures           {}", r.failures.len());
    for f in r.failures.iter().take(20) {
        println!("    {f}");
    }
    if r.clean_ops > 0 && what == "single cuts" {
        println!(
            "  max erases per block: clean run {} (target blocks {}, scratch blocks {}), with a cut and its resume {}",
            r.max_erases_clean,
            r.max_target_erases_clean,
            r.max_scratch_erases_clean,
            r.max_erases_with_cut
        );
        println!(
            "  rework per resume: at most {} op(s) beyond the interrupted one",
            r.max_rework_ops
        );
    }
}
