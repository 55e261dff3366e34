//! The IOTA-style component (TPS): MMC documents, the session logic and the
//! WAP push trigger, all pure. What the standard leaves open is defined here
//! and kept in this module so it can be swapped for the real schema.

pub mod handset;
pub mod mmc;
pub mod session;
