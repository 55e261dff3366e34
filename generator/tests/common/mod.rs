//! Fixtures shared by the generator's integration tests.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use fota_generator::DiffOptions;

/// A fixed key, so failures reproduce.
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// xorshift64*, for deterministic "code-like" bytes without a rand crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// An old/new pair shaped like a firmware update: code words with 32-bit
/// relative branch targets, a block inserted in the middle (so later code
/// moves and branches across it change), a patched constant table and an
/// erased (0xFF) tail.
pub fn firmware_pair(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(seed | 1);
    let mut old = Vec::with_capacity(len);
    while old.len() < len * 3 / 4 {
        let op = [0xE8u8, 0x48, 0x8B, 0x89, 0x0F][(rng.next() % 5) as usize];
        old.push(op);
        let target = (rng.next() % 4096) as i32 - 2048;
        old.extend_from_slice(&target.to_le_bytes());
    }
    old.resize(len, 0xFF);
    let mut new = old.clone();
    let at = len / 2 - len / 2 % 5;
    let inserted: Vec<u8> = (0..len / 50).map(|_| rng.next() as u8).collect();
    new.splice(at..at, inserted.iter().copied());
    // Branches that cross the insertion point move by its length.
    for pos in (0..at).step_by(5) {
        if new[pos] == 0xE8 {
            let t = i32::from_le_bytes(new[pos + 1..pos + 5].try_into().unwrap());
            if pos as i32 + t > at as i32 {
                new[pos + 1..pos + 5].copy_from_slice(&(t + inserted.len() as i32).to_le_bytes());
            }
        }
    }
    for b in new.iter_mut().skip(len / 10).take(64) {
        *b = b.wrapping_add(7);
    }
    new.truncate(len + len / 100);
    (old, new)
}

/// Options for small fixtures: tiny segments so there are many ops, fast zstd.
pub fn small_opts() -> DiffOptions {
    DiffOptions {
        segment_size: 1024,
        level: 3,
        threads: 1,
        ..DiffOptions::default()
    }
}

/// Diffs `old` to `new` signed with `key(key_seed)`, applies the package
/// with the host applier and asserts it reproduces `new`.
pub fn diff_and_apply(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    key_seed: u8,
) -> fota_generator::DiffOutput {
    let k = key(key_seed);
    let out = fota_generator::diff(old, new, &k, opts).unwrap();
    let applied = fota_generator::apply(
        old,
        &out.package,
        &[k.verifying_key()],
        &fota_generator::DeviceIdentity::default(),
    )
    .unwrap();
    assert!(applied == new, "the package does not reproduce new");
    out
}

/// A package's framing around `manifest`: enough for the exports, which
/// read only the header and the manifest (the device checks the rest).
pub fn framed(manifest: &fota_format::Manifest) -> Vec<u8> {
    let m = manifest.to_bytes();
    let header = fota_format::Header {
        op_auth: manifest.op_auth,
        manifest_len: m.len() as u32,
        ops_len: 0,
        key_id: [0; 8],
        signature: [0; 64],
    };
    [&header.to_bytes()[..], &m[..]].concat()
}

/// For the exports: an A/B manifest 1.4.2 -> 1.5.0, 4 KiB segments, no
/// ops, edited by `edit`, framed as a package.
pub fn export_package(edit: impl FnOnce(&mut fota_format::Manifest)) -> Vec<u8> {
    let mut m = fota_generator::write::image_manifest(&[], &[], 4096, fota_format::Mode::AB);
    m.from_version = fota_format::Label::new("1.4.2").unwrap();
    m.to_version = fota_format::Label::new("1.5.0").unwrap();
    edit(&mut m);
    framed(&m)
}
