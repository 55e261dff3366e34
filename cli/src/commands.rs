//! One function per subcommand: read inputs, call the library, report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use fota_format::streams::StreamTable;
use fota_format::{Error as FormatError, Label, Manifest, Mode, OpKind, Package};
use fota_generator::mmap::MappedFile;
use fota_generator::{keys, DeviceIdentity, DiffOptions};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::args::{
    ApplyArgs, Cli, Command, DeviceArgs, DiffArgs, InspectArgs, KeygenArgs, VerifyArgs,
};
use crate::human;

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Keygen(a) => keygen(a),
        Command::Diff(a) => diff(a),
        Command::Apply(a) => apply(a),
        Command::Verify(a) => verify(a),
        Command::Inspect(a) => inspect(a),
        Command::Flash(a) => crate::flash::run(a),
        Command::Sim(a) => crate::sim::run(a),
        Command::Export(c) => crate::export::run(c),
        Command::Serve(a) => crate::server::serve(a),
        Command::Device(a) => crate::server::device(a),
        Command::Demo(a) => crate::server::demo(a),
    }
}

fn label(option: &str, text: &str) -> Result<Label> {
    Label::new(text).with_context(|| format!("{option} {text:?}"))
}

fn device(d: &DeviceArgs) -> Result<DeviceIdentity> {
    Ok(DeviceIdentity {
        device_class: label("--device-class", d.device_class.as_deref().unwrap_or(""))?,
        security_counter: d.security_counter,
    })
}

/// Names the file a refusal is about: the source image for source errors,
/// the package for everything else.
fn blame(err: FormatError, package: &Path, source: Option<&Path>) -> anyhow::Error {
    let file = match (err, source) {
        (
            FormatError::SourceHashMismatch
            | FormatError::SourceSizeMismatch { .. }
            | FormatError::SourceExtentHashMismatch { .. },
            Some(src),
        ) => src,
        _ => package,
    };
    anyhow::Error::new(err).context(file.display().to_string())
}

/// A progress bar on stderr, drawn only when stderr is a terminal (so
/// pipelines and logs stay clean).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Bar {
        let bar =
            indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
        // A hidden bar needs no ticking thread (a short apply would spend
        // more on starting it than on its work).
        if !bar.is_hidden() {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        Bar(bar)
    }

    fn style(template: &str) -> indicatif::ProgressStyle {
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    }

    /// Runs `work` under a spinner with `message`.
    fn spin<T>(message: &'static str, work: impl FnOnce() -> T) -> T {
        let bar = Bar::new();
        bar.0.set_style(Bar::style("{spinner} {msg} {elapsed}"));
        bar.0.set_message(message);
        let out = work();
        bar.0.finish_and_clear();
        out
    }
}

impl fota_generator::Progress for Bar {
    fn stage(&self, stage: fota_generator::Stage, total: u64) {
        if total == 0 {
            self.0.set_style(Bar::style("{spinner} {msg} {elapsed}"));
        } else {
            self.0.set_style(Bar::style(
                "{spinner} {msg:22} [{bar:30}] {bytes}/{total_bytes} {elapsed}",
            ));
        }
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(stage.describe());
    }

    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }
}

fn keygen(a: KeygenArgs) -> Result<()> {
    let (secret, public) = keys::generate(&a.dir, a.force)?;
    println!(
        "secret key: {}\npublic key: {}",
        secret.display(),
        public.display()
    );
    Ok(())
}

fn diff(a: DiffArgs) -> Result<()> {
    let key = keys::read_secret(&a.key)?;
    let old = MappedFile::open(&a.old)?;
    let new = MappedFile::open(&a.new)?;
    let release_notes_sha256 = match &a.release_notes {
        Some(p) => {
            Sha256::digest(std::fs::read(p).with_context(|| p.display().to_string())?).into()
        }
        None => [0; 32],
    };
    let opts = DiffOptions {
        threads: a.threads.unwrap_or(0),
        segment_size: a.segment_size,
        level: a.level,
        profile: a.profile.into(),
        device_class: label("--device-class", &a.device_class)?,
        from_version: label("--from-version", &a.from_version)?,
        to_version: label("--to-version", &a.to_version)?,
        security_counter: a.security_counter,
        release_notes_sha256,
        self_check: !a.no_self_check,
        mode: a.mode.into(),
        erase_size: a.erase_size,
        scratch_size: a.scratch_size,
        arch: if a.no_xform {
            fota_generator::Arch::None
        } else {
            a.arch.into()
        },
        xform_ram: a.xform_ram,
        decompress: !a.no_decompress,
        chain: a.chain,
        ..DiffOptions::default()
    };
    let bar = Bar::new();
    let out = fota_generator::diff_with_progress(&old, &new, &key, &opts, &bar);
    bar.0.finish_and_clear();
    let out = out.with_context(|| format!("diff {} -> {}", a.old.display(), a.new.display()))?;
    fota_generator::write_atomically(&a.output, &out.package)?;
    let (old_len, new_len, pkg_len) =
        (old.len() as u64, new.len() as u64, out.package.len() as u64);
    if a.json {
        let ops: serde_json::Map<String, serde_json::Value> = out
            .by_kind
            .iter()
            .map(|(k, s)| {
                (k.name().to_string(), json!({"ops": s.ops, "target_bytes": s.target_bytes, "package_bytes": s.package_bytes}))
            })
            .collect();
        let st = out.stage_seconds;
        println!(
            "{}",
            json!({
                "old": a.old, "new": a.new, "package": a.output,
                "old_bytes": old_len, "new_bytes": new_len, "package_bytes": pkg_len,
                "ratio_to_new": if new_len == 0 { 0.0 } else { pkg_len as f64 / new_len as f64 },
                "seconds": out.seconds, "threads": out.threads,
                "stage_seconds": {"index": st.index, "matching": st.matching, "coding": st.coding, "self_check": st.self_check},
                "ops": ops,
                "mode": format!("{:?}", opts.mode), "segment_size": opts.effective_segment_size(),
                "xform": out.xform.map(|x| json!({
                    "isa": x.isa.name(), "layout": x.layout, "breakpoints": x.breakpoints,
                    "old_sites": x.old_sites, "new_sites": x.new_sites,
                })),
                "package_bytes_other_way": out.other_len,
                "streams": out.streams.map(|x| json!({
                    "source_streams": x.source_streams, "target_streams": x.target_streams,
                    "target_compressed_bytes": x.target_compressed, "target_data_bytes": x.target_data,
                    "target_parse_bytes": x.target_parse,
                })),
                "in_place": out.in_place.map(|p| json!({
                    "stash_ops": p.stash_ops, "stash_high_water": p.stash_high_water,
                    "scratch_slots": p.scratch_slots, "scratch_slots_available": p.scratch_slots_available,
                    "replanned_ops": p.replanned_ops,
                })),
            })
        );
    } else {
        println!(
            "{}: {} bytes, {:.2}% of the new image ({} bytes); {:.2} s on {} threads",
            a.output.display(),
            human::bytes(pkg_len),
            human::percent(pkg_len, new_len),
            human::bytes(new_len),
            out.seconds,
            out.threads
        );
        match (out.xform, out.other_len) {
            (Some(x), Some(other)) => println!(
                "xform: {} ({}), {} map breakpoints, {} old and {} new references rewritten; about {} bytes without it",
                x.isa.name(),
                x.layout,
                x.breakpoints,
                x.old_sites,
                x.new_sites,
                human::bytes(other as u64)
            ),
            (None, Some(other)) => println!(
                "xform: not used (about {} bytes with it)",
                human::bytes(other as u64)
            ),
            (Some(x), None) => println!(
                "xform: {} ({}), {} map breakpoints, {} old and {} new references rewritten",
                x.isa.name(),
                x.layout,
                x.breakpoints,
                x.old_sites,
                x.new_sites
            ),
            (None, None) => {}
        }
        if let Some(x) = out.streams {
            println!(
                "streams: {} old and {} new compressed streams diffed decompressed ({} compressed bytes of the new image are {} of data and {} of parse); apply needs the host applier",
                x.source_streams,
                x.target_streams,
                human::bytes(x.target_compressed),
                human::bytes(x.target_data),
                human::bytes(x.target_parse)
            );
        }
        if let Some(p) = out.in_place {
            let seg = u64::from(opts.effective_segment_size());
            println!(
                "in place: {}-byte segments, {} stash ops, at most {} of {} scratch slots live ({} bytes), {} ops re-planned for lack of scratch",
                human::bytes(seg),
                p.stash_ops,
                p.stash_high_water,
                p.scratch_slots_available,
                human::bytes(u64::from(p.stash_high_water) * seg),
                p.replanned_ops
            );
        }
    }
    Ok(())
}

fn apply(a: ApplyArgs) -> Result<()> {
    let started = Instant::now();
    let trusted = [keys::read_public(&a.pubkey)?];
    let device = device(&a.device)?;
    let old = MappedFile::open(&a.old)?;
    let pkg = MappedFile::open(&a.package)?;
    let target = Bar::spin("applying", || {
        fota_generator::apply(&old, &pkg, &trusted, &device)
    })
    .map_err(|e| blame(e, &a.package, Some(&a.old)))?;
    fota_generator::write_atomically(&a.output, &target)?;
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        println!(
            "{}",
            json!({"old": a.old, "package": a.package, "output": a.output, "output_bytes": target.len(), "seconds": seconds})
        );
    } else {
        println!(
            "{}: {} bytes written and verified ({:.2} s)",
            a.output.display(),
            human::bytes(target.len() as u64),
            seconds
        );
    }
    Ok(())
}

fn verify(a: VerifyArgs) -> Result<()> {
    let trusted = [keys::read_public(&a.pubkey)?];
    let device = device(&a.device)?;
    let pkg_bytes = MappedFile::open(&a.package)?;
    let blame_pkg = |e| blame(e, &a.package, a.source.as_deref());
    let (manifest, op_auth): (Manifest, fota_format::OpAuth) = match &a.source {
        Some(src) => {
            let old = MappedFile::open(src)?;
            fota_generator::apply(&old, &pkg_bytes, &trusted, &device).map_err(blame_pkg)?;
            let parsed = Package::parse(&pkg_bytes).map_err(blame_pkg)?;
            let manifest = parsed.manifest_unverified().map_err(blame_pkg)?;
            (manifest, parsed.header().op_auth)
        }
        None => {
            let parsed = Package::parse(&pkg_bytes).map_err(blame_pkg)?;
            let pkg = parsed.verify(&trusted).map_err(blame_pkg)?;
            pkg.check_device(&device.device_class, device.security_counter)
                .map_err(blame_pkg)?;
            for op in pkg.ops() {
                op.map_err(blame_pkg)?;
            }
            (*pkg.manifest(), parsed.header().op_auth)
        }
    };
    // A v3 signature covers the ops; a v2 package chains them.
    let ops = match op_auth {
        fota_format::OpAuth::Chain => "op chain",
        fota_format::OpAuth::Signature => "ops",
    };
    let checked = if a.source.is_some() {
        format!("signature, {ops} and target")
    } else {
        format!("signature and {ops}")
    };
    if a.json {
        println!(
            "{}",
            json!({"package": a.package, "ok": true, "checked": checked, "to_version": manifest.to_version.as_str()})
        );
    } else {
        println!("{}: OK ({checked} verified)", a.package.display());
    }
    Ok(())
}

/// What `fota inspect` shows of a package's reference transform.
fn xform_json(x: &fota_format::Xform<'_>, wire_len: usize) -> serde_json::Value {
    let ranges = |r: &mut dyn Iterator<Item = fota_format::xform::AddrRange>| {
        r.map(|g| json!({"offset": g.offset, "len": g.len, "address": format!("{:#010x}", g.address)}))
            .collect::<Vec<_>>()
    };
    json!({
        "isa": x.isa().name(),
        "branches": x.flags() & fota_format::xform::FLAG_BRANCHES != 0,
        "pointers": x.flags() & fota_format::xform::FLAG_POINTERS != 0,
        "branch_bits": x.branch_bits(),
        "old_ranges": ranges(&mut x.old_ranges()),
        "new_ranges": ranges(&mut x.new_ranges()),
        "pointer_windows": x.windows().map(|w| json!([format!("{:#010x}", w.low), format!("{:#010x}", w.high)])).collect::<Vec<_>>(),
        "breakpoints": x.breakpoint_count(),
        "package_bytes": wire_len,
    })
}

/// The stream table, for `fota inspect`.
fn streams_json(t: &StreamTable<'_>) -> serde_json::Value {
    let list = |it: &mut dyn Iterator<Item = fota_format::streams::Stream>| {
        it.map(|s| {
            json!({
                "codec": s.codec.name(), "offset": s.offset, "len": s.len,
                "data_len": s.data_len, "parse_len": s.parse_len,
                "props": s.props, "end_marker": s.end_marker,
            })
        })
        .collect::<Vec<_>>()
    };
    let i = t.images();
    json!({
        "source_size": i.source_size, "source_sha256": human::hex(&i.source_sha256),
        "target_size": i.target_size, "target_sha256": human::hex(&i.target_sha256),
        "source": list(&mut t.source_streams()),
        "target": list(&mut t.target_streams()),
    })
}

/// How `inspect` names a package's op authentication.
fn op_auth_name(auth: fota_format::OpAuth) -> &'static str {
    match auth {
        fota_format::OpAuth::Chain => "hash chain",
        fota_format::OpAuth::Signature => "signature",
    }
}

fn inspect(a: InspectArgs) -> Result<()> {
    let bytes = MappedFile::open(&a.package)?;
    let blame_pkg = |e| blame(e, &a.package, None);
    let pkg = Package::parse(&bytes).map_err(blame_pkg)?;
    let m = pkg.manifest_unverified().map_err(blame_pkg)?;
    let kinds = OpKind::ALL;
    let mut stats = [(0u64, 0u64, 0u64); OpKind::ALL.len()];
    let mut xform: Option<serde_json::Value> = None;
    let mut streams: Option<serde_json::Value> = None;
    // Where the package's bytes go: header and manifest, op heads (kinds,
    // lengths, hashes, extents), payloads.
    let (mut heads, mut payloads) = (0u64, 0u64);
    // PATCH ops whose LZMA literals are coded after the op's source.
    let mut after_source = 0u64;
    for op in pkg.ops_unverified().map_err(blame_pkg)? {
        let op = op.map_err(blame_pkg)?;
        if fota_format::lzma_payload::literals_follow_source(op.header.codec, op.payload) {
            after_source += 1;
        }
        if op.header.kind == OpKind::Streams {
            let at = op.payload_offset;
            let t = StreamTable::parse(op.payload, at, m.source_size, m.target_size)
                .map_err(blame_pkg)?;
            streams = Some(streams_json(&t));
        }
        if op.header.kind == OpKind::Xform {
            let at = op.payload_offset;
            let mut expanded = vec![0u8; m.xform_len as usize];
            fota_format::xform::expand(op.payload, at, &mut expanded).map_err(blame_pkg)?;
            let x = fota_format::Xform::parse(&expanded, at).map_err(blame_pkg)?;
            xform = Some(xform_json(&x, op.payload.len()));
        }
        heads += op.head_len();
        payloads += op.payload.len() as u64;
        let i = kinds.iter().position(|k| *k == op.header.kind).unwrap_or(0);
        stats[i].0 += 1;
        stats[i].1 += u64::from(op.header.dst_len);
        stats[i].2 += op.wire_len();
    }
    let h = pkg.header();
    let framing = json!({
        "header_bytes": fota_format::HEADER_LEN, "manifest_bytes": h.manifest_len,
        "op_head_bytes": heads, "payload_bytes": payloads,
    });
    let stash_ops = kinds
        .iter()
        .zip(stats)
        .find(|(k, _)| **k == OpKind::Stash)
        .map_or(0, |(_, (n, _, _))| n);
    if a.json {
        let ops: serde_json::Map<String, serde_json::Value> = kinds
            .iter()
            .zip(stats)
            .map(|(k, (n, t, p))| {
                (
                    k.name().to_string(),
                    json!({"ops": n, "target_bytes": t, "package_bytes": p}),
                )
            })
            .collect();
        println!(
            "{}",
            json!({
                "package": a.package, "package_bytes": bytes.len(), "format_version": h.op_auth.version(),
                "ops_authenticated_by": op_auth_name(h.op_auth),
                "key_id": human::hex(&h.key_id), "signature_checked": false,
                "device_class": m.device_class.as_str(), "from_version": m.from_version.as_str(), "to_version": m.to_version.as_str(),
                "security_counter": m.security_counter, "mode": format!("{:?}", m.mode), "profile": format!("{:?}", m.profile),
                "segment_size": m.segment_size,
                "source_size": m.source_size, "source_sha256": human::hex(&m.source_sha256),
                "target_size": m.target_size, "target_sha256": human::hex(&m.target_sha256),
                "op_count": m.op_count, "release_notes_sha256": human::hex(&m.release_notes_sha256),
                "scratch_slots": m.scratch_slots, "stash_ops": stash_ops,
                "xform": xform,
                "streams": streams,
                "framing": framing,
                "ops": ops,
                "literals_after_source_ops": after_source,
            })
        );
        return Ok(());
    }
    let p = PathBuf::from(&a.package);
    println!(
        "package        {} ({} bytes, format v{}, ops authenticated by {})",
        p.display(),
        human::bytes(bytes.len() as u64),
        h.op_auth.version(),
        op_auth_name(h.op_auth)
    );
    println!(
        "key id         {} (signature not checked: use `fota verify`)",
        human::hex(&h.key_id)
    );
    println!("device class   {:?}", m.device_class.as_str());
    println!(
        "versions       {:?} -> {:?}",
        m.from_version.as_str(),
        m.to_version.as_str()
    );
    println!("security ctr   {}", m.security_counter);
    println!("mode, profile  {:?}, {:?}", m.mode, m.profile);
    println!("segment size   {}", human::bytes(m.segment_size.into()));
    if m.mode == Mode::InPlace {
        println!(
            "scratch        {} slots ({} bytes), {} stash ops",
            m.scratch_slots,
            human::bytes(u64::from(m.scratch_slots) * u64::from(m.segment_size)),
            stash_ops
        );
    }
    println!(
        "source         {} bytes, sha256 {}",
        human::bytes(m.source_size),
        human::hex(&m.source_sha256)
    );
    println!(
        "target         {} bytes, sha256 {}",
        human::bytes(m.target_size),
        human::hex(&m.target_sha256)
    );
    if m.release_notes_sha256 != [0; 32] {
        println!(
            "release notes  sha256 {}",
            human::hex(&m.release_notes_sha256)
        );
    }
    match &xform {
        Some(x) => println!(
            "xform          {} ({} bytes in the package, {} in the device's RAM): {} map breakpoints, branch window {} bits, {} old / {} new address ranges, {} pointer windows",
            x["isa"].as_str().unwrap_or("?"),
            x["package_bytes"],
            m.xform_len,
            x["breakpoints"],
            x["branch_bits"],
            x["old_ranges"].as_array().map_or(0, Vec::len),
            x["new_ranges"].as_array().map_or(0, Vec::len),
            x["pointer_windows"].as_array().map_or(0, Vec::len),
        ),
        None => println!("xform          none"),
    }
    match &streams {
        Some(x) => {
            println!(
                "streams        {} source and {} target compressed streams, diffed decompressed (the source and target above are the expanded images; needs the host applier)",
                x["source"].as_array().map_or(0, Vec::len),
                x["target"].as_array().map_or(0, Vec::len),
            );
            println!(
                "real source    {} bytes, sha256 {}",
                x["source_size"],
                x["source_sha256"].as_str().unwrap_or("?")
            );
            println!(
                "real target    {} bytes, sha256 {}",
                x["target_size"],
                x["target_sha256"].as_str().unwrap_or("?")
            );
            for side in ["source", "target"] {
                for s in x[side].as_array().into_iter().flatten() {
                    println!(
                        "  {side} {} at {}: {} compressed bytes, {} of data, {} of parse",
                        s["codec"].as_str().unwrap_or("?"),
                        s["offset"],
                        s["len"],
                        s["data_len"],
                        s["parse_len"]
                    );
                }
            }
        }
        None => println!("streams        none"),
    }
    println!(
        "framing        header {} + manifest {} + op heads {} bytes; payloads {} bytes",
        fota_format::HEADER_LEN,
        h.manifest_len,
        human::bytes(heads),
        human::bytes(payloads)
    );
    println!("ops            {}", m.op_count);
    if after_source > 0 {
        println!(
            "               {after_source} patch ops code their literals after the op's source (an LZMA dictionary)"
        );
    }
    println!("  kind      ops   target bytes   package bytes");
    for (k, (n, t, pb)) in kinds.iter().zip(stats) {
        if n > 0 {
            println!(
                "  {:<6} {:>6} {:>14} {:>15}",
                k.name(),
                n,
                human::bytes(t),
                human::bytes(pb)
            );
        }
    }
    Ok(())
}
