//! A `.swu` for swupdate that applies a fota package with `fota flash`.
//!
//! swupdate (checked against Debian's 2022.12 build) installs a `.swu` in
//! three steps, and this module fills each with fota's part:
//!
//! ```text
//! .swu (cpio newc, CRC)      what swupdate does with it
//! ─────────────────────      ──────────────────────────────────────────────
//! sw-description             checks the CMS signature in sw-description.sig,
//! sw-description.sig         the version, the hardware revision (-H or
//!                            /etc/hwrevision), then copies every member to
//!                            $TMPDIR, checking each one's sha256
//! fota-flash.sh              runs `fota-flash.sh preinst` (does nothing)
//! update.fota                writes the package to the device path
//!                            (rawfile: directories created, atomic rename)
//!                            runs `fota-flash.sh postinst`: `fota flash ...
//!                            <device path>`; its exit status is the install's
//! ```
//!
//! swupdate requires `sw-description` first and, when it is built with
//! signing (Debian's is), `sw-description.sig` second; a `sha256` for every
//! file and script; a `version`; and `hardware-compatibility`. The package
//! itself needs no extra protection: `fota flash` checks its Ed25519
//! signature, device class, counter and source image before the first
//! write, and resumes from its journal if the device loses power.
//!
//! Every value that goes into sw-description is escaped for libconfig
//! strings, every value on the script's command line is single-quoted for
//! `sh`, and a value with a newline or NUL is refused rather than
//! mangled.

use sha2::{Digest, Sha256};

use fota_format::{Manifest, Package};

use super::cpio;
use super::flash::{check_fits, check_flash, check_nonempty};
use super::{Error, Result};

pub use super::flash::{check_text, hex, sh_quote, Boot, FlashCommand, DEFAULT_FOTA};
pub use super::Member;

/// Name of the member swupdate reads first: the update's description.
pub const SW_DESCRIPTION: &str = "sw-description";

/// Name of the CMS signature of [`SW_DESCRIPTION`], the second member.
pub const SIGNATURE: &str = "sw-description.sig";

/// Name of the package's member (and of its copy in swupdate's `$TMPDIR`).
pub const PACKAGE_MEMBER: &str = "update.fota";

/// Name of the script member that runs `fota flash`.
pub const SCRIPT_MEMBER: &str = "fota-flash.sh";

/// Where the device keeps the package by default.
pub const DEFAULT_DEVICE_PACKAGE: &str = "/var/lib/fota/update.fota";

/// Longest device package path: swupdate's rawfile handler holds the path,
/// and the path with `.tmp` appended for the atomic rename, in 255-byte
/// buffers with their NUL.
pub const MAX_DEVICE_PATH: usize = 250;

/// What goes into the `.swu` besides the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwuOptions {
    /// sw-description's `version`; `None` takes the package's to-version.
    pub software_version: Option<String>,
    /// sw-description's `description`; `None` describes the package's
    /// versions.
    pub description: Option<String>,
    /// Hardware revisions the update installs on (at least one): swupdate
    /// compares them with the device's (`-H board:rev` or
    /// `/etc/hwrevision`); an entry `#RE:<regex>` matches by pattern.
    pub hardware_compatibility: Vec<String>,
    /// Absolute path where the device keeps the package.
    pub device_package: String,
    /// How the device applies it.
    pub flash: FlashCommand,
}

impl SwuOptions {
    /// Options with the default device package path and the package's own
    /// version and description.
    pub fn new(flash: FlashCommand, hardware_compatibility: Vec<String>) -> SwuOptions {
        SwuOptions {
            software_version: None,
            description: None,
            hardware_compatibility,
            device_package: DEFAULT_DEVICE_PACKAGE.to_string(),
            flash,
        }
    }
}

/// Makes the detached signature of sw-description that swupdate checks: a
/// CMS signature in DER (what `openssl cms -sign -outform DER -nosmimecap
/// -binary` writes). A trait, so that this library spawns no process: the
/// `fota` command signs with `openssl`, tests with a closure.
pub trait Signer {
    /// Signs `sw_description` (the exact bytes of the member).
    ///
    /// # Errors
    /// Whatever stopped the signing; it is reported as [`Error::Sign`].
    fn sign(
        &self,
        sw_description: &[u8],
    ) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

impl<F> Signer for F
where
    F: Fn(&[u8]) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>,
{
    fn sign(
        &self,
        sw_description: &[u8],
    ) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
        self(sw_description)
    }
}

/// A finished `.swu` and what it holds.
#[derive(Debug, Clone)]
pub struct Swu {
    /// The archive.
    pub bytes: Vec<u8>,
    /// The sw-description member.
    pub sw_description: String,
    /// The script member.
    pub script: String,
    /// The version written into sw-description.
    pub software_version: String,
    /// The description written into sw-description.
    pub description: String,
    /// The command the script runs on `postinst`, one argument an element.
    pub command: Vec<String>,
    /// The members in archive order.
    pub members: Vec<Member>,
    /// Whether the archive carries `sw-description.sig`.
    pub signed: bool,
}

/// Wraps `package` (a fota package's bytes) in a `.swu`; signed by
/// `signer`, or unsigned when it is `None` (for swupdate builds without
/// signature checks; Debian's refuses unsigned images).
///
/// # Errors
/// [`Error::NotAPackage`] when `package` is not a fota package;
/// [`Error::BadValue`] for a value with a newline or NUL, an empty version
/// or path, a relative or over-long device package path, or a device class
/// the format cannot carry; [`Error::NoHardwareRevision`];
/// [`Error::Mismatch`] when `fota flash` would refuse the package with the
/// given device options (A/B without a source, in place with one, a boot
/// hand-off in place, a package that needs the host applier, another device
/// class, a lower counter, segments that are not whole erase blocks);
/// [`Error::Sign`] and [`Error::EmptySignature`] from the signer.
pub fn build(package: &[u8], options: &SwuOptions, signer: Option<&dyn Signer>) -> Result<Swu> {
    let manifest = Package::parse(package)
        .and_then(|p| p.manifest_unverified())
        .map_err(Error::NotAPackage)?;
    let software_version = software_version(options, &manifest)?;
    let description = match &options.description {
        Some(d) => {
            check_text("--description", d)?;
            d.clone()
        }
        None => default_description(&manifest, &software_version),
    };
    if options.hardware_compatibility.is_empty() {
        return Err(Error::NoHardwareRevision);
    }
    for rev in &options.hardware_compatibility {
        check_nonempty("--hardware-compatibility", rev)?;
    }
    check_device_package(&options.device_package)?;
    check_flash(&options.flash)?;
    check_fits(&options.flash, &manifest)?;

    let command = options.flash.argv(&options.device_package);
    let script = flash_script(&command, &options.device_package);
    let package_sha256: [u8; 32] = Sha256::digest(package).into();
    let script_sha256: [u8; 32] = Sha256::digest(script.as_bytes()).into();
    let sw_description = sw_description(
        &software_version,
        &description,
        &options.hardware_compatibility,
        &options.device_package,
        &hex(&package_sha256),
        &hex(&script_sha256),
    );
    let signature = match signer {
        Some(s) => {
            let sig = s.sign(sw_description.as_bytes()).map_err(Error::Sign)?;
            if sig.is_empty() {
                return Err(Error::EmptySignature);
            }
            Some(sig)
        }
        None => None,
    };

    let mut contents: Vec<(&'static str, &[u8])> =
        vec![(SW_DESCRIPTION, sw_description.as_bytes())];
    if let Some(sig) = &signature {
        contents.push((SIGNATURE, sig));
    }
    contents.push((SCRIPT_MEMBER, script.as_bytes()));
    contents.push((PACKAGE_MEMBER, package));
    let members = contents
        .iter()
        .map(|&(name, data)| Member {
            name,
            len: data.len() as u64,
            sha256: Sha256::digest(data).into(),
        })
        .collect();
    let bytes = cpio::archive(contents.iter().copied())?;
    Ok(Swu {
        bytes,
        sw_description,
        script,
        software_version,
        description,
        command,
        members,
        signed: signature.is_some(),
    })
}

/// `s` as a libconfig string literal: in double quotes, with backslash and
/// double quote escaped. (Other characters stand for themselves; callers
/// refuse newlines and NUL first, see [`check_text`].)
pub fn libconfig_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '\\' || c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn software_version(options: &SwuOptions, manifest: &Manifest) -> Result<String> {
    let (value, reason) = match &options.software_version {
        Some(v) => (v.clone(), "empty: swupdate requires a version"),
        None => (
            manifest.to_version.as_str().to_string(),
            "the package has no to-version to use: give the version swupdate records",
        ),
    };
    if value.is_empty() {
        return Err(Error::BadValue {
            option: "--software-version",
            value,
            reason,
        });
    }
    check_text("--software-version", &value)?;
    Ok(value)
}

fn default_description(m: &Manifest, version: &str) -> String {
    match m.from_version.as_str() {
        "" => format!("fota update to {version}"),
        from => format!("fota update {from} -> {version}"),
    }
}

fn check_device_package(path: &str) -> Result<()> {
    let option = "--device-package";
    check_nonempty(option, path)?;
    let reason = if !path.starts_with('/') {
        "not an absolute path: swupdate would write it relative to its own working directory"
    } else if path.ends_with('/') {
        "names a directory: give the path of the package file"
    } else if path.len() > MAX_DEVICE_PATH {
        "longer than the 250 bytes swupdate's rawfile handler holds"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        option,
        value: path.to_string(),
        reason,
    })
}

/// The script swupdate runs as `<script> preinst` and `<script> postinst`.
fn flash_script(command: &[String], device_package: &str) -> String {
    let command = command
        .iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let announce = sh_quote(&format!(
        "{SCRIPT_MEMBER}: applying {device_package}: {command}"
    ));
    let done = sh_quote(&format!("{SCRIPT_MEMBER}: fota flash finished"));
    format!(
        r#"#!/bin/sh
# {SCRIPT_MEMBER}, made by `fota export swu`. swupdate's shellscript handler
# runs it twice: `{SCRIPT_MEMBER} preinst` before it writes the files of the
# .swu (the package is not in place yet: nothing to do), and
# `{SCRIPT_MEMBER} postinst` after, which applies the package with
# `fota flash`. A non-zero exit status fails the install. `fota flash`
# checks the package's signature, device and source image before its first
# write, and resumes from its journal when run again after a power cut.
case "$1" in
postinst)
	printf '%s\n' {announce}
	{command}
	status=$?
	if [ "$status" -eq 0 ]; then
		printf '%s\n' {done}
	else
		printf '%s\n' "{SCRIPT_MEMBER}: fota flash failed with exit status $status" >&2
	fi
	exit "$status"
	;;
*)
	exit 0
	;;
esac
"#
    )
}

fn sw_description(
    version: &str,
    description: &str,
    hardware: &[String],
    device_package: &str,
    package_sha256: &str,
    script_sha256: &str,
) -> String {
    let version = libconfig_string(version);
    let description = libconfig_string(description);
    let hardware = hardware
        .iter()
        .map(|h| libconfig_string(h))
        .collect::<Vec<_>>()
        .join(", ");
    let path = libconfig_string(device_package);
    format!(
        r#"software =
{{
	version = {version};
	description = {description};
	hardware-compatibility: [ {hardware} ];
	files: (
		{{
			filename = "{PACKAGE_MEMBER}";
			path = {path};
			sha256 = "{package_sha256}";
			properties = {{
				create-destination = "true";
				atomic-install = "true";
			}};
		}}
	);
	scripts: (
		{{
			filename = "{SCRIPT_MEMBER}";
			type = "shellscript";
			sha256 = "{script_sha256}";
		}}
	);
}}
"#
    )
}
