//! Pairs, packages and layouts for the agent's tests.
#![allow(dead_code)]

use ed25519_dalek::SigningKey;
use fota_agent::sim::{Geometry, Rng, Setup};
use fota_agent::{Config, Layout, Range, Slots};
use fota_format::{Label, Mode, Profile};
use fota_generator::DiffOptions;

/// The signing key of every test package.
pub fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

/// An old/new pair shaped like firmware: instruction-like words with
/// relative offsets, a block inserted near the middle (so what follows
/// moves), a few changed constants and an erased tail.
pub fn pair(len: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let mut old: Vec<u8> = Vec::with_capacity(len);
    while old.len() < len * 7 / 8 {
        old.push([0x4b, 0xf0, 0x9a, 0x2d][rng.below(4) as usize]);
        old.extend_from_slice(&(rng.below(1 << 12) as u16).to_le_bytes());
        old.push(0x47);
    }
    old.resize(len, 0xff);
    let mut new = old.clone();
    let at = len / 3;
    let inserted: Vec<u8> = (0..len / 40).map(|_| rng.next_u64() as u8).collect();
    new.splice(at..at, inserted);
    for i in (len / 8..len / 8 + 40).step_by(4) {
        new[i] ^= 0x21;
    }
    new.truncate(len + len / 64);
    (old, new)
}

/// Generator options for small packages with many ops: segments of one
/// erase block.
pub fn opts(mode: Mode, segment: u32) -> DiffOptions {
    DiffOptions {
        threads: 1,
        segment_size: segment,
        erase_size: segment,
        level: 3,
        mode,
        device_class: Label::new("test-board").unwrap(),
        ..DiffOptions::default()
    }
}

/// [`opts`] with the tiny codec profile.
pub fn tiny_opts(mode: Mode, segment: u32) -> DiffOptions {
    DiffOptions {
        profile: Profile::Tiny,
        ..opts(mode, segment)
    }
}

/// A/B layout on uniform blocks: source slot, target slot, 2 journal blocks.
pub fn ab_setup<'a>(
    old: &[u8],
    new: &'a [u8],
    package: &'a [u8],
    keys: &'a [ed25519_dalek::VerifyingKey],
    erase: u64,
    write: usize,
) -> Setup<'a> {
    let slot = (old.len().max(new.len()) as u64).div_ceil(erase) * erase;
    let blocks = (2 * slot / erase) as usize + 2;
    let layout = Layout {
        slots: Slots::AB {
            source: Range::new(0, slot),
            target: Range::new(slot, slot),
        },
        journal: Range::new(2 * slot, 2 * erase),
    };
    let geometry = Geometry::uniform(blocks, erase, write, 1);
    setup_on(old, new, package, keys, geometry, layout)
}

/// A signed A/B package of `old` → `new` (one segment of `seg` bytes)
/// made of one PATCH op with the LZMA payload `payload` (decoding to
/// `decoded_len` bytes) over the whole source: for payloads written by
/// hand.
pub fn one_lzma_patch_package(
    old: &[u8],
    new: &[u8],
    payload: Vec<u8>,
    decoded_len: usize,
    seg: usize,
) -> Vec<u8> {
    use fota_format::{Codec, Extent, Manifest, OpKind};
    use fota_generator::plan::PlannedOp;
    use fota_generator::write::{image_manifest, write_package};
    let op = PlannedOp {
        kind: OpKind::Patch,
        codec: Codec::Lzma,
        fill_value: 0,
        dst_offset: 0,
        dst_len: seg as u32,
        extents: vec![Extent {
            offset: 0,
            len: seg as u64,
        }],
        payload,
        decoded_len: decoded_len as u32,
    };
    let m = Manifest {
        device_class: Label::new("test-board").unwrap(),
        ..image_manifest(old, new, seg as u32, Mode::AB)
    };
    write_package(m, &[op], old, new, &key()).unwrap()
}

/// Runs the A/B update of `old` → `new` by `package` (one segment of
/// `seg` bytes, erase blocks of the same size) and checks that the agent
/// refuses it with an error whose text contains `expected`, before it
/// programs anything in the target slot.
pub fn assert_refused_before_writing(
    old: &[u8],
    new: &[u8],
    package: &[u8],
    seg: usize,
    expected: &str,
) {
    let keys = [key().verifying_key()];
    let setup = ab_setup(old, new, package, &keys, seg as u64, 16);
    let mut flash = setup.fresh_flash();
    let err = setup.run(&mut flash).unwrap_err();
    assert!(format!("{err:?}").contains(expected), "{err:?}");
    assert!(!setup.is_done(&flash));
    let target = &flash.bytes()[seg..2 * seg];
    assert!(
        target.iter().all(|&b| b == 0xff),
        "the segment is not written"
    );
}

/// In-place layout on uniform blocks: the image, a scratch area of
/// `scratch_blocks`, 2 journal blocks.
pub fn in_place_setup<'a>(
    old: &[u8],
    new: &'a [u8],
    package: &'a [u8],
    keys: &'a [ed25519_dalek::VerifyingKey],
    erase: u64,
    write: usize,
    scratch_blocks: u64,
) -> Setup<'a> {
    let image = (old.len().max(new.len()) as u64).div_ceil(erase) * erase;
    let scratch = scratch_blocks * erase;
    let blocks = ((image + scratch) / erase) as usize + 2;
    let layout = Layout {
        slots: Slots::InPlace {
            image: Range::new(0, image),
            scratch: Range::new(image, scratch),
        },
        journal: Range::new(image + scratch, 2 * erase),
    };
    let geometry = Geometry::uniform(blocks, erase, write, 1);
    setup_on(old, new, package, keys, geometry, layout)
}

/// A setup on any geometry and layout (mixed sector sizes, erased value
/// 0x00, any write and read size): `old` is loaded at the layout's source
/// (the A/B source slot, or the in-place image).
pub fn setup_on<'a>(
    old: &[u8],
    new: &'a [u8],
    package: &'a [u8],
    keys: &'a [ed25519_dalek::VerifyingKey],
    geometry: Geometry,
    layout: Layout,
) -> Setup<'a> {
    Setup {
        geometry,
        initial: vec![(layout.source().start, old.to_vec())],
        layout,
        package,
        config: Config {
            layout,
            trusted: keys,
            device_class: Label::new("test-board").unwrap(),
            security_counter: 0,
        },
        expected: new,
    }
}

/// Runs `setup`'s update on `flash` from any package source, with a work
/// buffer of `work_len` bytes and tracker buffers for up to 512 segments.
pub fn run_from<P: fota_agent::PackageSource>(
    setup: &Setup<'_>,
    flash: &mut fota_agent::sim::SimFlash,
    package: &mut P,
    work_len: usize,
) -> fota_agent::Result<fota_agent::Report> {
    let mut work = vec![0u8; work_len];
    let (mut w, mut o, mut s) = (vec![0u8; 64], vec![0u8; 64], vec![0u32; 4]);
    fota_agent::block_on(fota_agent::apply(
        flash,
        package,
        &setup.config,
        fota_agent::Buffers {
            work: &mut work,
            written: &mut w,
            overwritten: &mut o,
            slots: &mut s,
        },
    ))
}

/// A package held in memory that counts the bytes read and fails every
/// read reaching `fail_from` or beyond (`u64::MAX`: none fails).
pub struct TestPackage<'a> {
    pub bytes: &'a [u8],
    pub fail_from: u64,
    pub read: u64,
}

impl<'a> TestPackage<'a> {
    /// Every read succeeds.
    pub fn new(bytes: &'a [u8]) -> Self {
        TestPackage {
            bytes,
            fail_from: u64::MAX,
            read: 0,
        }
    }

    /// Reads reaching `fail_from` fail.
    pub fn failing_from(bytes: &'a [u8], fail_from: u64) -> Self {
        TestPackage {
            fail_from,
            ..TestPackage::new(bytes)
        }
    }
}

impl fota_agent::PackageSource for TestPackage<'_> {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }
    async fn read(&mut self, offset: u64, buf: &mut [u8]) -> bool {
        let end = offset.saturating_add(buf.len() as u64);
        let Some(part) = self.bytes.get(offset as usize..end as usize) else {
            return false;
        };
        if end > self.fail_from {
            return false;
        }
        buf.copy_from_slice(part);
        self.read += buf.len() as u64;
        true
    }
}
