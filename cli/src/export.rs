//! `fota export`: a package wrapped for another update client. The
//! formats live in `fota_generator::export`; this file reads the inputs,
//! signs with `openssl` and writes the output.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context, Result};
use fota_generator::export::flash::{sh_quote, Boot, FlashCommand};
use fota_generator::export::mender::{self, MenderOptions};
use fota_generator::export::swu::{self, Signer, SwuOptions};
use fota_generator::export::Error as ExportError;
use serde_json::json;

use crate::args::{BootArg, DeviceFlashArgs, ExportCommand, MenderArgs, MenderModuleArgs, SwuArgs};
use crate::human;

/// Runs `fota export FORMAT`.
pub fn run(c: ExportCommand) -> Result<()> {
    match c {
        ExportCommand::Swu(a) => swu(a),
        ExportCommand::Mender(a) => mender(a),
        ExportCommand::MenderModule(a) => mender_module(a),
    }
}

fn boot(b: BootArg) -> Boot {
    match b {
        BootArg::None => Boot::None,
        BootArg::Mcuboot => Boot::Mcuboot,
        BootArg::File => Boot::File,
    }
}

fn swu(a: SwuArgs) -> Result<()> {
    let package = std::fs::read(&a.package).with_context(|| a.package.display().to_string())?;
    let signer = match (&a.cms_cert, &a.cms_key) {
        (Some(cert), Some(key)) if !a.no_sign => Some(Openssl::new(cert, key)?),
        _ => None,
    };
    let options = SwuOptions {
        software_version: a.software_version.clone(),
        description: a.description.clone(),
        hardware_compatibility: a.hardware_compatibility.clone(),
        device_package: a.device_package.clone(),
        flash: flash_command(&a.flash),
    };
    let out = swu::build(
        &package,
        &options,
        signer.as_ref().map(|s| s as &dyn Signer),
    )
    .map_err(|e| name_package(e, &a.package))?;
    fota_generator::write_atomically(&a.output, &out.bytes)?;

    let command = out
        .command
        .iter()
        .map(|s| sh_quote(s))
        .collect::<Vec<_>>()
        .join(" ");
    if a.json {
        let members: Vec<_> = out
            .members
            .iter()
            .map(|m| json!({"name": m.name, "bytes": m.len, "sha256": human::hex(&m.sha256)}))
            .collect();
        println!(
            "{}",
            json!({
                "package": a.package, "output": a.output, "output_bytes": out.bytes.len(),
                "signed": out.signed, "software_version": out.software_version,
                "description": out.description,
                "hardware_compatibility": options.hardware_compatibility,
                "device_package": options.device_package,
                "command": out.command, "members": members,
            })
        );
        return Ok(());
    }
    let signed = match &signer {
        Some(s) => format!("signed with {} (CMS)", s.cert.display()),
        None => "unsigned (--no-sign)".to_string(),
    };
    println!(
        "{}: {} bytes, {signed}; version {:?} for hardware {}",
        a.output.display(),
        human::bytes(out.bytes.len() as u64),
        out.software_version,
        options.hardware_compatibility.join(", ")
    );
    for m in &out.members {
        let dest = if m.name == swu::PACKAGE_MEMBER {
            format!(" -> {}", options.device_package)
        } else {
            String::new()
        };
        println!("  {:<20} {:>12} bytes{dest}", m.name, human::bytes(m.len));
    }
    println!("postinst runs: {command}");
    Ok(())
}

fn flash_command(f: &DeviceFlashArgs) -> FlashCommand {
    FlashCommand {
        fota: f.fota.clone(),
        pubkey: f.pubkey.clone(),
        source: f.source.clone(),
        image: f.image.clone(),
        state: f.state.clone(),
        erase_size: f.erase_size,
        write_size: f.write_size,
        boot: f.boot.map(boot),
        device_class: f.device_class.clone(),
        security_counter: f.security_counter,
    }
}

/// An export error, with the package file named when it is about the
/// package.
fn name_package(e: ExportError, package: &Path) -> anyhow::Error {
    match e {
        ExportError::NotAPackage(_) | ExportError::Mismatch { .. } => {
            anyhow::Error::new(e).context(package.display().to_string())
        }
        e => e.into(),
    }
}

fn mender(a: MenderArgs) -> Result<()> {
    let package = std::fs::read(&a.package).with_context(|| a.package.display().to_string())?;
    let options = MenderOptions {
        artifact_name: a.artifact_name.clone(),
        device_types: a.device_type.clone(),
        payload_type: a.payload_type.clone(),
    };
    let out = mender::build(&package, &options).map_err(|e| name_package(e, &a.package))?;
    fota_generator::write_atomically(&a.output, &out.bytes)?;

    let module = format!("{}/{}", mender::MODULES_DIR, out.payload_type);
    if a.json {
        let members: Vec<_> = out
            .members
            .iter()
            .chain([&out.payload])
            .map(|m| json!({"name": m.name, "bytes": m.len, "sha256": human::hex(&m.sha256)}))
            .collect();
        println!(
            "{}",
            json!({
                "package": a.package, "output": a.output, "output_bytes": out.bytes.len(),
                "artifact_name": out.artifact_name, "device_types": out.device_types,
                "payload_type": out.payload_type, "module": module,
                "members": members,
            })
        );
        return Ok(());
    }
    println!(
        "{}: {} bytes, unsigned; artifact {:?} for device types {}",
        a.output.display(),
        human::bytes(out.bytes.len() as u64),
        out.artifact_name,
        out.device_types.join(", ")
    );
    for m in out.members.iter().chain([&out.payload]) {
        println!("  {:<24} {:>12} bytes", m.name, human::bytes(m.len));
    }
    println!("installed by the update module {module} (from `fota export mender-module`)");
    Ok(())
}

fn mender_module(a: MenderModuleArgs) -> Result<()> {
    let module = mender::module(&flash_command(&a.flash))?;
    write_executable(&a.output, module.script.as_bytes())?;
    let command = module
        .command
        .iter()
        .map(|s| sh_quote(s))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "{}: {} bytes; install on the device as {}/{} (mode 0755)",
        a.output.display(),
        module.script.len(),
        mender::MODULES_DIR,
        mender::DEFAULT_PAYLOAD_TYPE
    );
    println!(
        "ArtifactInstall runs: {command} <work folder>/files/{}",
        mender::PAYLOAD_FILE
    );
    Ok(())
}

/// Writes `bytes` to `path` atomically, executable (mode 0755) where
/// files have modes.
fn write_executable(path: &Path, bytes: &[u8]) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fota_generator::write_atomically_with_permissions(
            path,
            bytes,
            std::fs::Permissions::from_mode(0o755),
        )?;
    }
    #[cfg(not(unix))]
    fota_generator::write_atomically(path, bytes)?;
    Ok(())
}

/// Signs sw-description with `openssl cms -sign`, the signature swupdate
/// checks (DER, no S/MIME capabilities, binary content).
struct Openssl {
    cert: PathBuf,
    key: PathBuf,
}

impl Openssl {
    /// Checks that both files can be read, so that an error names the file
    /// rather than coming back from openssl.
    fn new(cert: &Path, key: &Path) -> Result<Openssl> {
        for (path, what) in [
            (cert, "the CMS certificate (--cms-cert)"),
            (key, "the CMS key (--cms-key)"),
        ] {
            std::fs::File::open(path)
                .with_context(|| format!("{}: cannot read {what}", path.display()))?;
        }
        Ok(Openssl {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        })
    }

    fn sign_with_openssl(&self, data: &[u8]) -> Result<Vec<u8>> {
        // sw-description goes through a temporary file rather than stdin,
        // so that no pipe can fill up while openssl writes its output.
        let mut input =
            tempfile::NamedTempFile::new().context("a temporary file for sw-description")?;
        input
            .write_all(data)
            .and_then(|()| input.flush())
            .with_context(|| input.path().display().to_string())?;
        let output = Command::new("openssl")
            .args(["cms", "-sign", "-in"])
            .arg(input.path())
            .arg("-signer")
            .arg(&self.cert)
            .arg("-inkey")
            .arg(&self.key)
            .args(["-outform", "DER", "-nosmimecap", "-binary"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    anyhow!(
                        "openssl not found on PATH: it makes the CMS signature swupdate checks (install OpenSSL, or use --no-sign for a swupdate built without signature checks)"
                    )
                } else {
                    anyhow::Error::new(e).context("running openssl")
                }
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let stderr: Vec<&str> = stderr
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            return Err(anyhow!(
                "openssl cms -sign with certificate {} and key {} failed ({}): {}",
                self.cert.display(),
                self.key.display(),
                output.status,
                if stderr.is_empty() {
                    "no message".to_string()
                } else {
                    stderr.join("; ")
                }
            ));
        }
        Ok(output.stdout)
    }
}

impl Signer for Openssl {
    fn sign(
        &self,
        sw_description: &[u8],
    ) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.sign_with_openssl(sw_description)?)
    }
}
