//! Command-line arguments (clap derive). The exact forms below are a
//! contract that scripts and the benchmark harness rely on.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Firmware over the air: make, apply and check signed delta packages.
#[derive(Debug, Parser)]
#[command(name = "fota", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a signing key pair: DIR/fota.key (secret, mode 0600) and DIR/fota.pub.
    Keygen(KeygenArgs),
    /// Make a signed package that turns OLD into NEW.
    Diff(DiffArgs),
    /// Apply PKG to OLD and write the new image to OUT (atomically).
    Apply(ApplyArgs),
    /// Check PKG's signature and op chain, and with --source that it reproduces its target.
    Verify(VerifyArgs),
    /// Show a package's manifest and its ops by kind (the signature is not checked).
    Inspect(InspectArgs),
    /// Apply PKG the way a device does, to files standing for its flash:
    /// power-cut safe, resumed by running the same command again.
    Flash(FlashArgs),
    /// Run the power-cut campaign on an update in a simulated flash: a cut
    /// at every program and erase (four outcomes each), then a resume.
    Sim(SimArgs),
    /// Wrap a package for another update client, so devices that already
    /// run one install fota packages through it.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Run the FOTA server (registry, repository, OMA-DM and IOTA sessions,
    /// downloads, campaigns, admin API) until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
    /// A simulated handset: create one, check for updates, take a push.
    Device(DeviceCmdArgs),
    /// End to end on the bundled sample: a server on 127.0.0.1, a device
    /// that updates through the whole client-initiated flow with a dropped
    /// download and a power cut during the install.
    Demo(DemoArgs),
}

/// `fota keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Folder for fota.key and fota.pub (created if missing).
    pub dir: PathBuf,
    /// Replace an existing key pair.
    #[arg(long)]
    pub force: bool,
}

/// Checks a device has of a package.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// The device's class: refuse packages made for another class.
    #[arg(long, value_name = "S")]
    pub device_class: Option<String>,
    /// The device's anti-rollback counter: refuse packages below it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_counter: u64,
}

/// `fota diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Secret key (PKCS#8 PEM, from `fota keygen` or OpenSSL).
    #[arg(long, value_name = "KEY")]
    pub key: PathBuf,
    /// Worker threads (default: all cores). The package is the same for any count.
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Device class the package is for.
    #[arg(long, value_name = "S", default_value = "")]
    pub device_class: String,
    /// Version of OLD.
    #[arg(long, value_name = "V", default_value = "")]
    pub from_version: String,
    /// Version of NEW.
    #[arg(long, value_name = "V", default_value = "")]
    pub to_version: String,
    /// Anti-rollback counter of NEW.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub security_counter: u64,
    /// Destination segment size in bytes: a multiple of the device's erase block
    /// (in place, left at the default: one erase block).
    #[arg(long, value_name = "BYTES", default_value_t = fota_generator::DEFAULT_SEGMENT_SIZE)]
    pub segment_size: u32,
    /// zstd level of payloads, 1 to 22 (profile zstd).
    #[arg(long, value_name = "L", default_value_t = fota_generator::DEFAULT_LEVEL)]
    pub level: i32,
    /// Codec profile the device decodes: zstd (application processors) or
    /// tiny (microcontrollers: no RAM window, 64 bytes of decoder state).
    #[arg(long, value_enum, default_value_t = ProfileArg::Zstd)]
    pub profile: ProfileArg,
    /// Release notes file: its sha256 goes into the signed manifest.
    #[arg(long, value_name = "FILE")]
    pub release_notes: Option<PathBuf>,
    /// Update mode: ab (the target goes to another slot) or in-place (the
    /// target overwrites OLD; ops are ordered and stashed to allow that).
    #[arg(long, value_enum, default_value_t = ModeArg::Ab)]
    pub mode: ModeArg,
    /// The device's erase block in bytes (in place: segments are whole erase blocks).
    #[arg(long, value_name = "BYTES", default_value_t = fota_generator::DEFAULT_ERASE_SIZE)]
    pub erase_size: u32,
    /// In place: scratch bytes the device has for stashes (default: the larger of 2
    /// erase blocks and 2 % of the larger image).
    #[arg(long, value_name = "BYTES")]
    pub scratch_size: Option<u64>,
    /// Instruction set whose branches and pointers are rewritten so that moved
    /// code diffs to nothing: auto (ELF headers, or in a raw image a Cortex-M
    /// vector table, or AArch64, A32 or x86-64 code; the package is made with
    /// and without the transform and the smaller is kept), thumb, arm,
    /// aarch64 or x86_64 (always, when the layout is found), or none.
    #[arg(long, value_enum, default_value_t = ArchArg::Auto)]
    pub arch: ArchArg,
    /// No reference transform (the same as --arch none), to measure its gain.
    #[arg(long, conflicts_with = "arch")]
    pub no_xform: bool,
    /// RAM the device lends the transform, in bytes (`fota inspect` shows what
    /// a package needs): the address map is cut to fit. Default: the format's
    /// limit (64 KiB).
    #[arg(long, value_name = "BYTES")]
    pub xform_ram: Option<u32>,
    /// Diff compressed streams (LZMA, as in UEFI firmware volumes; xz; deflate,
    /// as in gzip, zlib and zip members) as they are, not decompressed. By default streams of the new image that code back
    /// bit-exactly are diffed decompressed (zstd profile only): such a package
    /// needs the host applier (`fota apply`); on-device agents refuse it.
    #[arg(long)]
    pub no_decompress: bool,
    /// Authenticate the ops of an A/B package with a hash chain (format
    /// version 2), for a device that applies the package as it streams in,
    /// without storing it. By default A/B packages are signed whole (version
    /// 3: the device reads the package once to check it before it writes,
    /// and the package is 32 bytes smaller per op); in-place packages
    /// always keep the chain.
    #[arg(long)]
    pub chain: bool,
    /// Skip applying the package to OLD before writing it (faster, less safe).
    #[arg(long)]
    pub no_self_check: bool,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The old image.
    pub old: PathBuf,
    /// The new image.
    pub new: PathBuf,
    /// Where to write the package.
    #[arg(short = 'o', long = "output", value_name = "PKG")]
    pub output: PathBuf,
}

/// `--arch` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ArchArg {
    /// Detect from the images.
    Auto,
    /// Thumb-2 (Cortex-M; Thumb code of Cortex-A/R).
    Thumb,
    /// AArch64 (ELF files, or raw images).
    Aarch64,
    /// x86-64 (ELF files, or raw images).
    #[value(name = "x86_64", alias = "x86-64")]
    X86_64,
    /// A32, the ARM mode of ARMv7-A/R (ELF files, or raw images).
    Arm,
    /// No transform.
    None,
}

impl From<ArchArg> for fota_generator::Arch {
    fn from(a: ArchArg) -> Self {
        match a {
            ArchArg::Auto => fota_generator::Arch::Auto,
            ArchArg::Thumb => fota_generator::Arch::Thumb,
            ArchArg::Aarch64 => fota_generator::Arch::Aarch64,
            ArchArg::X86_64 => fota_generator::Arch::X86_64,
            ArchArg::Arm => fota_generator::Arch::Arm,
            ArchArg::None => fota_generator::Arch::None,
        }
    }
}

/// `--profile` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    /// zstd payloads.
    Zstd,
    /// tiny payloads.
    Tiny,
}

impl From<ProfileArg> for fota_format::Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::Zstd => fota_format::Profile::Zstd,
            ProfileArg::Tiny => fota_format::Profile::Tiny,
        }
    }
}

/// `fota apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Trusted public key (PEM).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
    /// Device checks.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The old image the package was made from.
    pub old: PathBuf,
    /// The package.
    pub package: PathBuf,
    /// Where to write the new image (only once it is fully verified).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

/// `fota verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Trusted public key (PEM).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
    /// The old image: also check the package applies to it and yields its target.
    #[arg(long, value_name = "OLD")]
    pub source: Option<PathBuf>,
    /// Device checks.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The package.
    pub package: PathBuf,
}

/// `fota inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The package.
    pub package: PathBuf,
}

/// `--mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// A/B: the target goes to another slot.
    Ab,
    /// In place: the target overwrites the source.
    InPlace,
}

impl From<ModeArg> for fota_format::Mode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Ab => fota_format::Mode::AB,
            ModeArg::InPlace => fota_format::Mode::InPlace,
        }
    }
}

/// `fota flash`: in place (`--image IMG`) or A/B (`--source OLD --image SLOT`).
#[derive(Debug, Args)]
pub struct FlashArgs {
    /// Trusted public key (PEM).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
    /// A/B: the running image, read only. Without it the update is in place.
    #[arg(long, value_name = "OLD")]
    pub source: Option<PathBuf>,
    /// The flash slot written: in place it starts as the old image; A/B it
    /// is created or extended as needed. Ends up starting with the new image.
    #[arg(long, value_name = "IMG")]
    pub image: PathBuf,
    /// The agent's own flash: the journal and, in place, the scratch area.
    #[arg(long, value_name = "STATE")]
    pub state: PathBuf,
    /// Erase block size of the modelled flash, in bytes.
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub erase_size: u64,
    /// Program unit of the modelled flash, in bytes.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub write_size: usize,
    /// A/B: how to mark the new slot pending for the bootloader.
    #[arg(long, value_enum, default_value_t = BootArg::None)]
    pub boot: BootArg,
    /// Device checks.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The package.
    pub package: PathBuf,
}

/// `--boot` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BootArg {
    /// Leave boot state alone.
    None,
    /// MCUboot image trailer at the end of SLOT (test boot).
    Mcuboot,
    /// A state file next to STATE (STATE.boot).
    File,
}

/// `fota sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Trusted public key (PEM).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
    /// Layout to simulate; must match the package (default: the package's).
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Erase block size, in bytes (the package's segment size must be a multiple).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub erase_size: u64,
    /// Program unit, in bytes.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub write_size: usize,
    /// Read unit, in bytes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub read_size: usize,
    /// Value of an erased byte (255 or 0).
    #[arg(long, value_name = "V", default_value_t = 255)]
    pub erased: u8,
    /// Cut points: `all` (every program and erase), or about N evenly spaced.
    #[arg(long, value_name = "all|N", default_value = "all")]
    pub cuts: String,
    /// Also this many seeded runs with 1 to 10 random cuts each.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub random: u64,
    /// Seed of the torn outcomes and the random runs.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Re-run one failure by its replay id (as printed) and stop.
    #[arg(long, value_name = "ID")]
    pub replay: Option<String>,
    /// Device checks.
    #[command(flatten)]
    pub device: DeviceArgs,
    /// The old image (the source the package applies to).
    pub old: PathBuf,
    /// The package.
    pub package: PathBuf,
}

/// `fota export` formats.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// A .swu for swupdate, whose script applies the package with `fota flash`.
    ///
    /// swupdate checks the .swu's CMS signature, the hardware revision and
    /// every member's sha256, writes the package to --device-package, then
    /// runs the script, which applies it with `fota flash` (power-cut safe,
    /// resumed by installing again); a refusal fails the install.
    Swu(SwuArgs),
    /// A .mender artifact for mender-client, whose payload is the package.
    ///
    /// mender-client checks the artifact's checksums and device type,
    /// stores the package, and has the update module (`fota export
    /// mender-module`, installed on the device) apply it with `fota flash`;
    /// a refusal fails the install. Made for mender-client 3.x (artifact
    /// format v3, unsigned, gzip).
    Mender(MenderArgs),
    /// The Mender update module that installs `fota export mender`
    /// artifacts: a sh script that runs `fota flash` with these options.
    ///
    /// Install it on the device as /usr/share/mender/modules/v3/fota (the
    /// payload type), mode 0755. It answers No to NeedsArtifactReboot and
    /// SupportsRollback: `fota flash` is power-cut safe and resumed by
    /// installing again, and hands the new slot to the bootloader itself
    /// (--boot).
    MenderModule(MenderModuleArgs),
}

/// `fota export mender`.
#[derive(Debug, Args)]
pub struct MenderArgs {
    /// A device type the artifact installs on, as the device's
    /// device_type file names it; repeat for several. mender-client
    /// refuses artifacts without one.
    #[arg(long, value_name = "TYPE", required = true)]
    pub device_type: Vec<String>,
    /// The name mender-client records once the artifact is installed, and
    /// that a Mender server compares with the device's (default: the
    /// package's to-version).
    #[arg(long, value_name = "NAME")]
    pub artifact_name: Option<String>,
    /// The payload type: the name of the update module on the device that
    /// installs it (/usr/share/mender/modules/v3/TYPE).
    #[arg(long, value_name = "TYPE", default_value = fota_generator::export::mender::DEFAULT_PAYLOAD_TYPE)]
    pub payload_type: String,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The package (from `fota diff`).
    pub package: PathBuf,
    /// Where to write the artifact (only once it is complete).
    #[arg(short = 'o', long = "output", value_name = "OUT.mender")]
    pub output: PathBuf,
}

/// `fota export mender-module`.
#[derive(Debug, Args)]
pub struct MenderModuleArgs {
    /// How the device runs `fota flash`.
    #[command(flatten)]
    pub flash: DeviceFlashArgs,
    /// Where to write the module (mode 0755, only once it is complete).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    pub output: PathBuf,
}

/// `fota export swu`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("signing").required(true).args(["cms_cert", "no_sign"])))]
pub struct SwuArgs {
    /// Certificate (PEM) that signs sw-description with CMS, through
    /// `openssl cms -sign`; the device runs swupdate with `-k` on it or on
    /// its CA.
    #[arg(long, value_name = "CERT", requires = "cms_key")]
    pub cms_cert: Option<PathBuf>,
    /// Private key (PEM) of --cms-cert.
    #[arg(long, value_name = "KEY", requires = "cms_cert")]
    pub cms_key: Option<PathBuf>,
    /// Make an unsigned .swu, for swupdate builds without signature checks
    /// (Debian's swupdate refuses it). The package inside stays signed.
    #[arg(long, conflicts_with_all = ["cms_cert", "cms_key"])]
    pub no_sign: bool,
    /// sw-description's version, which swupdate shows and records
    /// (default: the package's to-version).
    #[arg(long, value_name = "V")]
    pub software_version: Option<String>,
    /// sw-description's description (default: the package's versions).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// A hardware revision the update installs on, as swupdate gets it from
    /// `-H board:REV` or /etc/hwrevision (`#RE:` + a regex matches by
    /// pattern); repeat for several. swupdate refuses images without one.
    #[arg(long, visible_alias = "hardware", value_name = "REV", required = true)]
    pub hardware_compatibility: Vec<String>,
    /// Where the device keeps the package (absolute; directories are created).
    #[arg(long, value_name = "PATH", default_value = fota_generator::export::swu::DEFAULT_DEVICE_PACKAGE)]
    pub device_package: String,
    /// How the device runs `fota flash`.
    #[command(flatten)]
    pub flash: DeviceFlashArgs,
    /// Print a machine-readable summary on stdout.
    #[arg(long)]
    pub json: bool,
    /// The package (from `fota diff`).
    pub package: PathBuf,
    /// Where to write the .swu (only once it is complete).
    #[arg(short = 'o', long = "output", value_name = "OUT.swu")]
    pub output: PathBuf,
}

/// Help heading of [`DeviceFlashArgs`].
const DEVICE_HEADING: &str = "On the device (options of `fota flash`)";

/// The `fota flash` command an exported update (a .swu's script, the
/// Mender update module) runs on the device: its options, with paths on
/// the device. Options left out take `fota flash`'s defaults.
#[derive(Debug, Args)]
pub struct DeviceFlashArgs {
    /// The fota binary on the device: a path, or a name looked up on the
    /// PATH the update client (swupdate, mender) runs scripts with.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "PATH", default_value = fota_generator::export::swu::DEFAULT_FOTA)]
    pub fota: String,
    /// Trusted package signing key (PEM) on the device.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "PUB")]
    pub pubkey: String,
    /// A/B: the running image, read only. Without it the update is in place.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "OLD")]
    pub source: Option<String>,
    /// The flash slot written (in place: the image updated).
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "IMG")]
    pub image: String,
    /// The agent's journal (and, in place, scratch) file.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "STATE")]
    pub state: String,
    /// Erase block size of the device's flash, in bytes.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "N")]
    pub erase_size: Option<u64>,
    /// Program unit of the device's flash, in bytes.
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "N")]
    pub write_size: Option<u64>,
    /// A/B: how to mark the new slot pending for the bootloader.
    #[arg(long, help_heading = DEVICE_HEADING, value_enum)]
    pub boot: Option<BootArg>,
    /// The device's class: a package for another class is refused (by
    /// `fota export swu`, and by `fota flash` on the device).
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "S")]
    pub device_class: Option<String>,
    /// The device's anti-rollback counter: a package below it is refused (by
    /// `fota export swu`, and by `fota flash` on the device).
    #[arg(long, help_heading = DEVICE_HEADING, value_name = "N")]
    pub security_counter: Option<u64>,
}

/// `fota serve`: flags override the file (`--config`) and `FOTA_*`
/// variables.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML configuration file (keys as in `fota_server::Config`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on (HOST:PORT).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The URL devices reach the server at.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// `sqlite://FILE?mode=rwc` or `postgres://…`.
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Folder of the package store.
    #[arg(long, value_name = "DIR")]
    pub packages: Option<PathBuf>,
    /// A trusted package signing key (PEM); repeat for several.
    #[arg(long, value_name = "PUB")]
    pub trusted_key: Vec<PathBuf>,
}

/// `fota device`.
#[derive(Debug, Args)]
pub struct DeviceCmdArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: DeviceAction,
}

/// `fota device` actions.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// Make a handset in DIR running IMAGE.
    Init(DeviceInitArgs),
    /// Check in at the FOTA URL and work through what the server offers.
    Check(DeviceRunArgs),
    /// Take a notification (as the outbox holds it) and act on it.
    Push(DevicePushArgs),
}

/// `fota device init`.
#[derive(Debug, Args)]
pub struct DeviceInitArgs {
    /// The device's folder (state file and flash files).
    pub dir: PathBuf,
    /// ESN, MEID or IMEI.
    #[arg(long)]
    pub id: String,
    /// Manufacturer.
    #[arg(long)]
    pub make: String,
    /// Model.
    #[arg(long)]
    pub model: String,
    /// The firmware version IMAGE is.
    #[arg(long)]
    pub version: String,
    /// `oma-dm` or `iota`.
    #[arg(long)]
    pub capability: String,
    /// The server's FOTA check-in URL (http://HOST:PORT/fota/check).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// The device's DM password (from the registration).
    #[arg(long, default_value = "")]
    pub dm_password: String,
    /// The operator's public key (PEM).
    #[arg(long, value_name = "PUB")]
    pub pubkey: PathBuf,
    /// The device class packages must name.
    #[arg(long, default_value = "")]
    pub device_class: String,
    /// What the user answers: accept or refuse.
    #[arg(long, default_value = "accept")]
    pub consent: String,
    /// The firmware it runs now.
    #[arg(long)]
    pub image: PathBuf,
}

/// `fota device check` and `push` options.
#[derive(Debug, Args)]
pub struct DeviceRunArgs {
    /// The device's folder.
    pub dir: PathBuf,
    /// Lose the connection after BYTES of the download (once).
    #[arg(long, value_name = "BYTES")]
    pub drop_after: Option<u64>,
    /// Cut the power after N flash operations of the install (once).
    #[arg(long, value_name = "N")]
    pub cut_after: Option<u64>,
    /// Answer yes to the consent prompt.
    #[arg(long)]
    pub yes: bool,
}

/// `fota device push`.
#[derive(Debug, Args)]
pub struct DevicePushArgs {
    /// Run options.
    #[command(flatten)]
    pub run: DeviceRunArgs,
    /// `wap-push` or `dm-notification`.
    #[arg(long)]
    pub transport: String,
    /// The payload: a trigger URI, or base64 package #0.
    #[arg(long)]
    pub payload: String,
}

/// `fota demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The old image (default: the bundled sample, built with the C compiler).
    #[arg(long, requires = "new")]
    pub old: Option<PathBuf>,
    /// The new image.
    #[arg(long, requires = "old")]
    pub new: Option<PathBuf>,
    /// Keep the work folder (server database, packages, device files).
    #[arg(long)]
    pub keep: bool,
}
