//! `fota serve`, `fota device` and `fota demo`: thin layers over
//! `fota_server` (the server and its device simulator).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use fota_generator::{keys, DiffOptions};
use fota_server::device::flash::Faults;
use fota_server::device::{ConsentPolicy, Device, DeviceState, Options, Say};
use fota_server::registry::Capability;
use fota_server::Config;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::args::{DemoArgs, DeviceAction, DeviceCmdArgs, DeviceRunArgs, ServeArgs};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}

/// Runs `fota serve`.
pub fn serve(a: ServeArgs) -> Result<()> {
    init_logs("info");
    let mut c = Config::load(a.config.as_deref(), std::env::vars())?;
    if let Some(l) = a.listen {
        c.listen = l;
    }
    if let Some(u) = a.public_url {
        c.public_url = u;
    }
    if let Some(d) = a.database {
        c.database_url = d;
    }
    if let Some(p) = a.packages {
        c.package_dir = p;
    }
    if !a.trusted_key.is_empty() {
        c.trusted_keys = a.trusted_key;
    }
    if c.admin_tokens.is_empty() {
        eprintln!("note: no admin token configured (FOTA_ADMIN_TOKEN): the admin API accepts only tokens stored earlier");
    }
    runtime()?.block_on(fota_server::http::serve(c))?;
    Ok(())
}

fn printer() -> Say {
    Arc::new(|s: &str| println!("device    {s}"))
}

fn run_options(r: &DeviceRunArgs) -> Options {
    Options {
        drop_after: r.drop_after,
        faults: Faults {
            cut_after_ops: r.cut_after,
            broken: false,
        },
        yes: r.yes,
    }
}

/// Runs `fota device`.
pub fn device(a: DeviceCmdArgs) -> Result<()> {
    match a.action {
        DeviceAction::Init(i) => {
            let capability = Capability::parse(&i.capability).ok_or_else(|| {
                anyhow!("--capability {:?}: expected oma-dm or iota", i.capability)
            })?;
            let consent = match i.consent.as_str() {
                "accept" => ConsentPolicy::Accept,
                "refuse" => ConsentPolicy::Refuse,
                o => bail!("--consent {o:?}: expected accept or refuse"),
            };
            let image = std::fs::read(&i.image).with_context(|| i.image.display().to_string())?;
            let pem = std::fs::read_to_string(&i.pubkey)
                .with_context(|| i.pubkey.display().to_string())?;
            let host = i
                .server
                .split("://")
                .nth(1)
                .and_then(|r| r.split(['/', ':']).next())
                .unwrap_or("")
                .to_string();
            let state = DeviceState {
                id: i.id,
                make: i.make,
                model: i.model,
                fw_version: i.version,
                capability,
                consent,
                fota_url: i.server,
                trusted_domain: host,
                dm_password: i.dm_password,
                dm_server_id: "fota".into(),
                dm_server_password: String::new(),
                dm_wbxml: false,
                dm_nonce: String::new(),
                device_class: i.device_class,
                security_counter: 0,
                public_key_pem: pem,
                erase_size: 4096,
                write_size: 4,
                active_slot: 0,
                pending: None,
                to_report: None,
            };
            Device::create(&i.dir, state, &image, Options::default(), printer())?;
            println!("device    created in {}", i.dir.display());
            Ok(())
        }
        DeviceAction::Check(r) => {
            let mut d = Device::open(&r.dir, run_options(&r), printer())?;
            let s = runtime()?.block_on(d.check())?;
            println!("result    {} (runs {})", s.result, s.fw_version);
            Ok(())
        }
        DeviceAction::Push(p) => {
            let mut d = Device::open(&p.run.dir, run_options(&p.run), printer())?;
            let s = runtime()?.block_on(d.on_notification(&p.transport, &p.payload))?;
            println!("result    {} (runs {})", s.result, s.fw_version);
            Ok(())
        }
    }
}

/// The bundled sample's build script: next to the working directory, or
/// in the source tree this binary was built from.
fn sample_build_script() -> Result<PathBuf> {
    let here = PathBuf::from("corpus/sample/build.sh");
    if here.exists() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/sample/build.sh");
    if built.exists() {
        return Ok(built);
    }
    bail!("the bundled sample (corpus/sample/build.sh) is not here: run from the repository root, or give --old and --new")
}

/// Runs `fota demo`.
pub fn demo(a: DemoArgs) -> Result<()> {
    let work = tempfile::Builder::new()
        .prefix("fota-demo")
        .tempdir()
        .context("work folder")?;
    let dir = work.path().to_path_buf();
    if a.keep {
        println!("(work folder kept: {})", dir.display());
    }
    let result = runtime()?.block_on(demo_in(&dir, &a));
    if a.keep {
        let _ = work.keep();
    }
    result
}

async fn demo_in(dir: &Path, a: &DemoArgs) -> Result<()> {
    let (old_path, new_path) = match (&a.old, &a.new) {
        (Some(o), Some(n)) => (o.clone(), n.clone()),
        _ => {
            println!("== building the sample firmware pair (sensord 1.4.2 -> 1.5.0)");
            let script = sample_build_script()?;
            let st = std::process::Command::new("bash")
                .arg(&script)
                .arg(dir)
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !st.success() {
                bail!("{} failed ({st})", script.display());
            }
            (dir.join("old"), dir.join("new"))
        }
    };
    let old = std::fs::read(&old_path).with_context(|| old_path.display().to_string())?;
    let new = std::fs::read(&new_path).with_context(|| new_path.display().to_string())?;

    println!("== signing key and package");
    let (secret, public) = keys::generate(&dir.join("keys"), false)?;
    let key = keys::read_secret(&secret)?;
    let notes = "sensord 1.5.0: faster sampling, a fixed ring-buffer overflow, new log levels.";
    let opts = DiffOptions {
        segment_size: 16 * 1024,
        device_class: label("sn-200")?,
        from_version: label("1.4.2")?,
        to_version: label("1.5.0")?,
        security_counter: 2,
        release_notes_sha256: Sha256::digest(notes.as_bytes()).into(),
        ..DiffOptions::default()
    };
    let package = fota_generator::diff(&old, &new, &key, &opts)?.package;
    println!(
        "package   {} -> {} bytes: {} bytes ({:.1} % of the new image)",
        old.len(),
        new.len(),
        package.len(),
        100.0 * package.len() as f64 / new.len().max(1) as f64
    );

    println!("== server on 127.0.0.1 (random port, temporary SQLite)");
    // A random admin token for this run only (256 bits, never printed).
    let token = format!("{}{}", fota_server::db::new_id(), fota_server::db::new_id());
    let config = Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: format!("sqlite://{}?mode=rwc", dir.join("fota.db").display()),
        package_dir: dir.join("packages"),
        archive_dir: dir.join("archive"),
        trusted_keys: vec![public.clone()],
        admin_tokens: vec![token.clone()],
        download_descriptor: true,
        ..Config::default()
    };
    let server = fota_server::http::start(config).await?;
    let base = format!("http://{}", server.addr);
    println!("server    listening on {base}");
    let admin = Admin {
        http: reqwest::Client::new(),
        base: format!("{base}/admin/v1"),
        token,
    };
    let result = demo_flow(&admin, &base, dir, &public, &old, &new, package, notes).await;
    server.stop().await?;
    println!("server    stopped");
    result
}

#[allow(clippy::too_many_arguments)]
async fn demo_flow(
    admin: &Admin,
    base: &str,
    dir: &Path,
    public: &Path,
    old: &[u8],
    new: &[u8],
    package: Vec<u8>,
    notes: &str,
) -> Result<()> {
    println!("== operator: firmware, package, device");
    for v in ["1.4.2", "1.5.0"] {
        admin
            .post(
                "/firmware",
                json!({"make": "Sensa", "model": "SN-200", "version": v, "device_class": "sn-200"}),
            )
            .await?;
        println!("admin     firmware Sensa SN-200 {v} (device class sn-200)");
    }
    let size = package.len() as u64;
    let form = reqwest::multipart::Form::new()
        .text("make", "Sensa")
        .text("model", "SN-200")
        .text("notes", notes.to_string())
        .part(
            "package",
            reqwest::multipart::Part::bytes(package).file_name("update.fota"),
        );
    let up = admin
        .send(
            admin
                .http
                .post(format!("{}/packages", admin.base))
                .multipart(form),
        )
        .await?;
    println!(
        "admin     package {} uploaded: signature, ops, device class, versions and notes checked",
        up["package"]["id"].as_str().unwrap_or("?")
    );
    let imei = "356938035643809";
    let reg = admin
        .post("/devices", json!({"id": imei, "make": "Sensa", "model": "SN-200", "fw_version": "1.4.2", "capability": "oma-dm", "subscriber": "demo"}))
        .await?;
    println!("admin     device IMEI {imei} registered (OMA-DM, runs 1.4.2)");

    println!("== device: client-initiated update (download dropped halfway, power cut during the install)");
    let state = DeviceState {
        id: imei.into(),
        make: "Sensa".into(),
        model: "SN-200".into(),
        fw_version: "1.4.2".into(),
        capability: Capability::OmaDm,
        consent: ConsentPolicy::Accept,
        fota_url: format!("{base}/fota/check"),
        trusted_domain: "127.0.0.1".into(),
        dm_password: reg["dm_password"].as_str().unwrap_or("").to_string(),
        dm_server_id: "fota".into(),
        dm_server_password: String::new(),
        dm_wbxml: false,
        dm_nonce: String::new(),
        device_class: "sn-200".into(),
        security_counter: 1,
        public_key_pem: std::fs::read_to_string(public)?,
        erase_size: 4096,
        write_size: 4,
        active_slot: 0,
        pending: None,
        to_report: None,
    };
    let options = Options {
        drop_after: Some(size / 2),
        faults: Faults {
            cut_after_ops: Some(6),
            broken: false,
        },
        yes: false,
    };
    let mut device = Device::create(&dir.join("device"), state, old, options, printer())?;
    let summary = device.check().await?;

    println!("== result");
    let d = admin.get(&format!("/devices/{imei}")).await?;
    let status = d["updates"][0]["state"]
        .as_str()
        .unwrap_or("none")
        .to_string();
    println!(
        "server    update status: {status} (result code {})",
        d["updates"][0]["result_code"]
    );
    println!("server    device runs {}", d["device"]["fw_version"]);
    let flash = device.running_image()?;
    let same = flash.len() >= new.len() && flash[..new.len()] == new[..];
    println!(
        "device    flash equals the new image: {} ({} bytes fetched for a {size}-byte package)",
        if same { "yes" } else { "NO" },
        summary.bytes_fetched
    );
    if status != "installed" || !same || summary.result != "installed" {
        bail!("the demo did not end installed with the new image in flash");
    }
    println!("final status: installed");
    Ok(())
}

fn label(s: &str) -> Result<fota_format::Label> {
    fota_format::Label::new(s).with_context(|| format!("label {s:?}"))
}

struct Admin {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Admin {
    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value> {
        let resp = r.bearer_auth(&self.token).send().await?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("admin API: HTTP {status}: {}", body["message"]);
        }
        Ok(body)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
}
