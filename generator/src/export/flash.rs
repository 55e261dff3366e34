//! The `fota flash` command an exported update runs on the device, and the
//! checks and quoting every export shares: the options are baked into a
//! script (swupdate's `fota-flash.sh`, the Mender update module) as `sh`
//! words, so a value the script cannot carry is refused, never mangled.

use fota_format::{Label, Manifest, Mode};

use super::{Error, Result};

/// The `fota` command on the device by default (looked up on its `PATH`).
pub const DEFAULT_FOTA: &str = "fota";

/// How `fota flash` marks the new slot for the bootloader (its `--boot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Leave boot state alone.
    None,
    /// An MCUboot image trailer at the end of the slot (test boot).
    Mcuboot,
    /// A state file next to the journal.
    File,
}

impl Boot {
    /// The value as `fota flash --boot` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Boot::None => "none",
            Boot::Mcuboot => "mcuboot",
            Boot::File => "file",
        }
    }
}

/// How the device runs `fota flash`: the options of that command, as paths
/// and values on the device. `None` leaves an option out, so the device's
/// `fota flash` uses its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlashCommand {
    /// The `fota` binary: a path, or a name looked up on the `PATH` the
    /// update client (swupdate, mender) runs scripts with.
    pub fota: String,
    /// Trusted package signing key (PEM) (`--pubkey`).
    pub pubkey: String,
    /// A/B: the running image, read only (`--source`); `None` updates in
    /// place.
    pub source: Option<String>,
    /// The slot written (`--image`).
    pub image: String,
    /// The agent's journal and scratch file (`--state`).
    pub state: String,
    /// Erase block size in bytes (`--erase-size`).
    pub erase_size: Option<u64>,
    /// Program unit in bytes (`--write-size`).
    pub write_size: Option<u64>,
    /// Boot hand-off (`--boot`).
    pub boot: Option<Boot>,
    /// The device's class (`--device-class`).
    pub device_class: Option<String>,
    /// The device's anti-rollback counter (`--security-counter`).
    pub security_counter: Option<u64>,
}

impl FlashCommand {
    /// `fota flash` with the three paths it always needs and every other
    /// option left to its default.
    pub fn new(
        pubkey: impl Into<String>,
        image: impl Into<String>,
        state: impl Into<String>,
    ) -> FlashCommand {
        FlashCommand {
            fota: DEFAULT_FOTA.to_string(),
            pubkey: pubkey.into(),
            source: None,
            image: image.into(),
            state: state.into(),
            erase_size: None,
            write_size: None,
            boot: None,
            device_class: None,
            security_counter: None,
        }
    }

    /// The command line that applies `package`, one argument per element.
    /// Options take the `--name=value` form and the package follows `--`,
    /// so no value is ever read as another option.
    pub fn argv(&self, package: &str) -> Vec<String> {
        let mut v = self.argv_before_package();
        v.push(package.to_string());
        v
    }

    /// [`FlashCommand::argv`] without its last element, the package: for a
    /// script that learns the package's path only when it runs (the Mender
    /// update module). Ends with `--`.
    pub fn argv_before_package(&self) -> Vec<String> {
        let mut v = vec![self.fota.clone(), "flash".to_string()];
        let mut opt = |name: &str, value: &dyn std::fmt::Display| {
            v.push(format!("--{name}={value}"));
        };
        opt("pubkey", &self.pubkey);
        if let Some(s) = &self.source {
            opt("source", s);
        }
        opt("image", &self.image);
        opt("state", &self.state);
        if let Some(n) = self.erase_size {
            opt("erase-size", &n);
        }
        if let Some(n) = self.write_size {
            opt("write-size", &n);
        }
        if let Some(b) = self.boot {
            opt("boot", &b.name());
        }
        if let Some(c) = &self.device_class {
            opt("device-class", c);
        }
        if let Some(n) = self.security_counter {
            opt("security-counter", &n);
        }
        v.push("--".to_string());
        v
    }
}

/// `s` as one `sh` word: in single quotes, where nothing is special, and
/// each single quote written as `'\''` (close, escaped quote, reopen).
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Lower-case hex, as sw-description's `sha256` fields and a Mender
/// manifest's checksums are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a value with a newline or a NUL byte: a NUL would end the
/// update client's C strings early (swupdate's), a newline would split
/// sw-description's lines, a Mender manifest's or `key=value` file's, and
/// a script's announcement of its command, and neither belongs in a
/// version, a name, a path or an option value.
///
/// # Errors
/// [`Error::BadValue`] naming `option`.
pub fn check_text(option: &'static str, value: &str) -> Result<()> {
    let reason = if value.contains('\n') {
        "contains a newline, which the update cannot carry"
    } else if value.contains('\0') {
        "contains a NUL byte, which the update cannot carry"
    } else {
        return Ok(());
    };
    Err(Error::BadValue {
        option,
        value: value.to_string(),
        reason,
    })
}

/// Refuses an empty value, then as [`check_text`].
pub(crate) fn check_nonempty(option: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::BadValue {
            option,
            value: String::new(),
            reason: "empty",
        });
    }
    check_text(option, value)
}

/// Refuses `fota flash` options no device can run: an empty path, a
/// value with a newline or NUL, a device class longer than a label, a
/// flash unit of zero bytes.
pub(crate) fn check_flash(f: &FlashCommand) -> Result<()> {
    check_nonempty("--fota", &f.fota)?;
    check_nonempty("--pubkey", &f.pubkey)?;
    check_nonempty("--image", &f.image)?;
    check_nonempty("--state", &f.state)?;
    if let Some(s) = &f.source {
        check_nonempty("--source", s)?;
    }
    if let Some(c) = &f.device_class {
        check_text("--device-class", c)?;
        if Label::new(c).is_err() {
            return Err(Error::BadValue {
                option: "--device-class",
                value: c.clone(),
                reason: "longer than the 32 bytes a device class holds",
            });
        }
    }
    for (option, value) in [
        ("--erase-size", f.erase_size),
        ("--write-size", f.write_size),
    ] {
        if value == Some(0) {
            return Err(Error::BadValue {
                option,
                value: "0".to_string(),
                reason: "a flash unit of zero bytes",
            });
        }
    }
    Ok(())
}

/// The checks `fota flash` makes on its options against the package,
/// made here so that an update every device would refuse is never built.
pub(crate) fn check_fits(f: &FlashCommand, m: &Manifest) -> Result<()> {
    let mismatch = |reason: String| Err(Error::Mismatch { reason });
    match (m.mode, &f.source) {
        (Mode::AB, None) => {
            return mismatch(
                "an A/B package: the device needs its running image as the source (--source)"
                    .into(),
            )
        }
        (Mode::InPlace, Some(_)) => {
            return mismatch(
                "an in-place package: the image it updates is --image; drop --source".into(),
            )
        }
        _ => {}
    }
    if m.mode == Mode::InPlace && matches!(f.boot, Some(Boot::Mcuboot | Boot::File)) {
        return mismatch("--boot: an in-place update has no other slot to hand over to".into());
    }
    if m.streams_len != 0 {
        return mismatch(
            "the package diffs compressed streams decompressed and needs the host applier; `fota flash` refuses it (make it with `fota diff --no-decompress`)"
                .into(),
        );
    }
    if let Some(c) = &f.device_class {
        if !c.is_empty() && m.device_class.as_str() != c {
            return mismatch(format!(
                "the package is for device class {:?}, the device is {c:?}",
                m.device_class.as_str()
            ));
        }
    }
    if let Some(n) = f.security_counter {
        if m.security_counter < n {
            return mismatch(format!(
                "the package's security counter {} is below the device's {n}: it would be refused as a rollback",
                m.security_counter
            ));
        }
    }
    let erase = f.erase_size.unwrap_or(DEVICE_ERASE_SIZE);
    if u64::from(m.segment_size) % erase != 0 {
        return mismatch(format!(
            "the package's {}-byte segments are not whole erase blocks of {erase} bytes (--erase-size)",
            m.segment_size
        ));
    }
    Ok(())
}

/// `fota flash`'s default `--erase-size`.
const DEVICE_ERASE_SIZE: u64 = 4096;
