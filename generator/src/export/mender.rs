//! A Mender artifact that carries a fota package, and the update module
//! that installs it with `fota flash`.
//!
//! mender-client (checked against Debian's 3.4.0) installs an artifact of
//! format v3 through an update module named by the payload's type, and
//! this module writes both halves:
//!
//! ```text
//! artifact (ustar)           what mender-client does with it
//! ────────────────           ──────────────────────────────────────────────
//! version                    checks {"format":"mender","version":3}
//! manifest                   checks the sha256 of every member it names
//! header.tar.gz              header-info: the artifact name it records, the
//!   header-info              device types it installs on (its own must be
//!   headers/0000/type-info   one); type-info: the module that installs the
//!                            payload, /usr/share/mender/modules/v3/<type>
//! data/0000.tar.gz           stores update.fota in the module's work folder
//!   update.fota              (<work>/files/update.fota), then runs the
//!                            module: `<module> ArtifactInstall <work>` runs
//!                            `fota flash ... -- <work>/files/update.fota`
//! ```
//!
//! The module says it needs no reboot and has no rollback: `fota flash`
//! writes the other slot (A/B) or the image in place, power-cut safe and
//! resumed by installing again, and hands the new slot to the bootloader
//! (`--boot`); mender-client then records the artifact name at once.
//!
//! mender-client parses header-info strictly (an unknown key is refused),
//! needs every manifest line to end in a newline, the payload checksum
//! of the file inside `data/0000.tar.gz` (not of the compressed archive),
//! and a download of at least 4096 bytes: the tar writer pads to 10240.
//! Every value that goes into the JSON is escaped, and a value mender
//! cannot match or store (a device type with `=`, an artifact name with
//! whitespace) is refused rather than mangled.

use std::io::Write;

use flate2::{Compression, GzBuilder};
use sha2::{Digest, Sha256};

use fota_format::Package;

use super::flash::{check_flash, check_nonempty, check_text, hex, sh_quote, FlashCommand};
use super::{tar, Error, Member, Result};

/// Name of the first member: the artifact format and its version.
pub const VERSION_MEMBER: &str = "version";

/// Content of [`VERSION_MEMBER`].
pub const FORMAT_VERSION: &str = r#"{"format":"mender","version":3}"#;

/// Name of the second member: sha256 of every other member and payload
/// file.
pub const MANIFEST_MEMBER: &str = "manifest";

/// Name of the header archive (gzip).
pub const HEADER_MEMBER: &str = "header.tar.gz";

/// Name of the payload archive (gzip) of the artifact's only payload.
pub const DATA_MEMBER: &str = "data/0000.tar.gz";

/// Name of header-info inside [`HEADER_MEMBER`].
pub const HEADER_INFO: &str = "header-info";

/// Name of the payload's type-info inside [`HEADER_MEMBER`].
pub const TYPE_INFO: &str = "headers/0000/type-info";

/// Name of the package inside [`DATA_MEMBER`], and of the file the module
/// finds in its work folder (`files/update.fota`).
pub const PAYLOAD_FILE: &str = "update.fota";

/// The payload file as the manifest names it.
pub const MANIFEST_PAYLOAD: &str = "data/0000/update.fota";

/// The payload type, and so the update module's file name, by default.
pub const DEFAULT_PAYLOAD_TYPE: &str = "fota";

/// Where mender-client 3.4 looks for update modules (not configurable):
/// the module for payload type `T` is `MODULES_DIR/T`, executable.
pub const MODULES_DIR: &str = "/usr/share/mender/modules/v3";

/// What goes into the artifact besides the package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenderOptions {
    /// The name mender-client records once the artifact is installed (and
    /// that a server compares with the device's); `None` takes the
    /// package's to-version.
    pub artifact_name: Option<String>,
    /// Device types the artifact installs on (at least one): mender-client
    /// compares them with its own, the `device_type=` line of its
    /// `DeviceTypeFile`.
    pub device_types: Vec<String>,
    /// The payload type: the name of the update module that installs it.
    pub payload_type: String,
}

impl MenderOptions {
    /// Options with the default payload type and the package's version as
    /// the artifact name.
    pub fn new(device_types: Vec<String>) -> MenderOptions {
        MenderOptions {
            artifact_name: None,
            device_types,
            payload_type: DEFAULT_PAYLOAD_TYPE.to_string(),
        }
    }
}

/// A finished artifact and what it holds.
#[derive(Debug, Clone)]
pub struct Artifact {
    /// The artifact (an uncompressed ustar archive).
    pub bytes: Vec<u8>,
    /// The artifact name written into header-info.
    pub artifact_name: String,
    /// The device types written into header-info.
    pub device_types: Vec<String>,
    /// The payload type (the module's name).
    pub payload_type: String,
    /// The manifest member.
    pub manifest: String,
    /// header-info, inside the header archive.
    pub header_info: String,
    /// type-info, inside the header archive.
    pub type_info: String,
    /// The members of the artifact, in order.
    pub members: Vec<Member>,
    /// The package as a payload file ([`MANIFEST_PAYLOAD`]).
    pub payload: Member,
}

/// Wraps `package` (a fota package's bytes) in a Mender artifact.
///
/// # Errors
/// [`Error::NotAPackage`] when `package` is not a fota package;
/// [`Error::NoDeviceType`]; [`Error::BadValue`] for an empty artifact name
/// (or a package without a to-version to take it from), one with
/// whitespace or control characters, a device type mender-client could
/// never match (empty, with control characters, `=` or surrounding
/// whitespace), or a payload type that is not a plain file name;
/// [`Error::TarLimit`] for a package too large for the archive.
pub fn build(package: &[u8], options: &MenderOptions) -> Result<Artifact> {
    let manifest = Package::parse(package)
        .and_then(|p| p.manifest_unverified())
        .map_err(Error::NotAPackage)?;
    let artifact_name = match &options.artifact_name {
        Some(name) => name.clone(),
        None => manifest.to_version.as_str().to_string(),
    };
    check_artifact_name(&artifact_name, options.artifact_name.is_none())?;
    if options.device_types.is_empty() {
        return Err(Error::NoDeviceType);
    }
    for t in &options.device_types {
        check_device_type(t)?;
    }
    check_payload_type(&options.payload_type)?;

    let header_info = header_info(&options.payload_type, &artifact_name, &options.device_types);
    let type_info = type_info(&options.payload_type, &artifact_name);
    let header = gzip(
        HEADER_MEMBER,
        &tar::archive([
            (HEADER_INFO, header_info.as_bytes()),
            (TYPE_INFO, type_info.as_bytes()),
        ])?,
    )?;
    let data = gzip(DATA_MEMBER, &tar::archive([(PAYLOAD_FILE, package)])?)?;
    let payload = member(MANIFEST_PAYLOAD, package);

    let version = member(VERSION_MEMBER, FORMAT_VERSION.as_bytes());
    let header_member = member(HEADER_MEMBER, &header);
    // Every line ends in a newline, the last one too: mender-client drops
    // an unterminated last line and then misses that checksum.
    let manifest_text: String = [&version, &header_member, &payload]
        .iter()
        .map(|m| format!("{}  {}\n", hex(&m.sha256), m.name))
        .collect();

    let contents: [(&'static str, &[u8]); 4] = [
        (VERSION_MEMBER, FORMAT_VERSION.as_bytes()),
        (MANIFEST_MEMBER, manifest_text.as_bytes()),
        (HEADER_MEMBER, &header),
        (DATA_MEMBER, &data),
    ];
    let members = contents
        .iter()
        .map(|&(name, data)| member(name, data))
        .collect();
    let bytes = tar::archive(contents)?;
    Ok(Artifact {
        bytes,
        artifact_name,
        device_types: options.device_types.clone(),
        payload_type: options.payload_type.clone(),
        manifest: manifest_text,
        header_info,
        type_info,
        members,
        payload,
    })
}

fn member(name: &'static str, data: &[u8]) -> Member {
    Member {
        name,
        len: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

/// header-info with exactly the keys mender-client 3.4 accepts (it refuses
/// unknown ones): the payload's type, the artifact name it provides and the
/// device types it depends on.
fn header_info(payload_type: &str, artifact_name: &str, device_types: &[String]) -> String {
    let types = device_types
        .iter()
        .map(|t| json_string(t))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        r#"{{"payloads":[{{"type":{}}}],"artifact_provides":{{"artifact_name":{}}},"artifact_depends":{{"device_type":[{types}]}}}}"#,
        json_string(payload_type),
        json_string(artifact_name),
    )
}

/// type-info as mender-artifact writes it for a module payload: the
/// software version it provides (which replaces earlier ones of this type
/// in the device's provides), so that `mender show-provides` and a server
/// see `rootfs-image.<type>.version`.
fn type_info(payload_type: &str, artifact_name: &str) -> String {
    format!(
        r#"{{"type":{},"artifact_provides":{{{}:{}}},"clears_artifact_provides":[{}]}}"#,
        json_string(payload_type),
        json_string(&format!("rootfs-image.{payload_type}.version")),
        json_string(artifact_name),
        json_string(&format!("rootfs-image.{payload_type}.*")),
    )
}

/// `s` as a JSON string: in double quotes, with `"`, `\` and the control
/// characters escaped (callers refuse control characters, so the last
/// case only keeps the JSON valid whatever comes in).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str(r#"\""#),
            '\\' => out.push_str(r"\\"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// gzip of `data` with no file name and mtime 0, so that the same input
/// always gives the same bytes.
fn gzip(member: &'static str, data: &[u8]) -> Result<Vec<u8>> {
    let mut e = GzBuilder::new()
        .mtime(0)
        .operating_system(255) // "unknown": the same on every host
        .write(Vec::with_capacity(data.len() / 2), Compression::default());
    e.write_all(data)
        .map_err(|source| Error::Compress { member, source })?;
    e.finish()
        .map_err(|source| Error::Compress { member, source })
}

fn check_artifact_name(name: &str, from_package: bool) -> Result<()> {
    let option = "--artifact-name";
    if name.is_empty() {
        return Err(Error::BadValue {
            option,
            value: String::new(),
            reason: if from_package {
                "the package has no to-version to use: give the name mender records"
            } else {
                "empty: mender-client requires an artifact name"
            },
        });
    }
    check_text(option, name)?;
    let reason = if name.chars().any(char::is_control) {
        "contains a control character, which mender-client cannot record"
    } else if name.chars().any(char::is_whitespace) {
        "contains whitespace, which mender-artifact refuses in a name"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        option,
        value: name.to_string(),
        reason,
    })
}

fn check_device_type(t: &str) -> Result<()> {
    let option = "--device-type";
    check_nonempty(option, t)?;
    let reason = if t.chars().any(char::is_control) {
        "contains a control character, which the device's device_type file cannot hold"
    } else if t.contains('=') {
        "contains '=', which the device's device_type=... line cannot hold"
    } else if t.trim() != t {
        "starts or ends with whitespace, which mender-client trims from its own device type"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        option,
        value: t.to_string(),
        reason,
    })
}

fn check_payload_type(t: &str) -> Result<()> {
    let option = "--payload-type";
    check_nonempty(option, t)?;
    let reason = if !t
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        "not a plain file name (letters, digits, '.', '_', '-'): it names the update module"
    } else if t.starts_with('.') {
        "starts with '.': it names the update module's file"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        option,
        value: t.to_string(),
        reason,
    })
}

/// The update module and the command it runs.
#[derive(Debug, Clone)]
pub struct Module {
    /// The script, to install as `MODULES_DIR/<payload type>` (mode 0755).
    pub script: String,
    /// The command `ArtifactInstall` runs, one argument an element, before
    /// the package's path (which the module learns when it runs).
    pub command: Vec<String>,
}

/// The update module that applies the artifact's package with `flash`,
/// for mender-client 3.4's protocol (`<module> <State> <work folder>`).
///
/// # Errors
/// [`Error::BadValue`] for an empty path, a value with a newline or NUL,
/// a device class longer than the format's labels, or a zero flash unit.
/// (The package is not known here: `fota flash` checks it on the device,
/// before its first write.)
pub fn module(flash: &FlashCommand) -> Result<Module> {
    check_flash(flash)?;
    let command = flash.argv_before_package();
    Ok(Module {
        script: module_script(&command),
        command,
    })
}

/// The module script; `command` ends with `--`, the package follows it.
fn module_script(command: &[String]) -> String {
    let quoted = command
        .iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let shown = sh_quote(&quoted);
    format!(
        r#"#!/bin/sh
# A Mender update module (protocol v3), made by `fota export mender-module`.
# Install it, mode 0755, as {MODULES_DIR}/<payload type>
# (`fota export mender` makes payloads of type "{DEFAULT_PAYLOAD_TYPE}" by default).
#
# mender-client runs it as `<module> <State> <work folder>`, in the work
# folder. It does not read stream-next at Download, so mender-client
# stores the payload as <work folder>/files/{PAYLOAD_FILE}; ArtifactInstall
# applies it with `fota flash`, whose exit status is the install's. `fota
# flash` checks the package's signature, device and source image before its
# first write, and resumes from its journal when run again after a power
# cut. No reboot by mender (`fota flash --boot` hands the new slot to the
# bootloader) and no rollback through mender: every other state does
# nothing.
case "$1" in
SupportsRollback | NeedsArtifactReboot)
	echo No
	;;
ArtifactInstall)
	package="$2/files/{PAYLOAD_FILE}"
	if [ ! -f "$package" ]; then
		printf '%s\n' "fota module: no $package (was the artifact made by \`fota export mender\`?)" >&2
		exit 1
	fi
	printf '%s\n' "fota module: applying $package: "{shown}" $package"
	{quoted} "$package"
	status=$?
	if [ "$status" -eq 0 ]; then
		printf '%s\n' 'fota module: fota flash finished'
	else
		printf '%s\n' "fota module: fota flash failed with exit status $status" >&2
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("v2"), r#""v2""#);
        assert_eq!(json_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(
            json_string("a\nb\0\u{1f}\u{7f}"),
            r#""a\u000ab\u0000\u001f\u007f""#
        );
        assert_eq!(json_string("ünï ✓"), "\"ünï ✓\"");
    }
}
