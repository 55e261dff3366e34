//! The FOTA server: the device registry, the firmware repository, the
//! client- and network-initiated update flows over OMA-DM (FUMO) and
//! IOTA-style sessions, hawkBit DDI polling, campaigns and the admin API.
//!
//! Protocol codecs (`omadm`, `iota`, `ddi`, `mender`) are pure: bytes in, typed documents
//! out, and back; the HTTP layer (`http`) and the database (`db`) sit
//! around them. `device` is a handset in software that speaks both
//! protocols and applies packages with the real agent.
#![forbid(unsafe_code)]

pub mod artifacts;
pub mod campaigns;
pub mod config;
pub mod db;
pub mod ddi;
#[cfg(feature = "device")]
pub mod device;
pub mod download;
pub mod error;
pub mod http;
pub mod iota;
pub mod mender;
pub mod omadm;
pub mod registry;
pub mod repository;
pub mod sessions;
pub mod store;
pub mod updates;

pub use config::Config;
pub use error::{Error, Result};
