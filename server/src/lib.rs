//! The FOTA server: the device registry, the firmware repository, the
//! client- and network-initiated update flows over OMA-DM (FUMO) and
//! IOTA-style sessions, campaigns and the admin API.
//!
//! Protocol codecs (`omadm`, `iota`) are pure: bytes in, typed documents
//! out, and back; the HTTP layer and the database sit around them.
#![forbid(unsafe_code)]

pub mod iota;
pub mod omadm;
