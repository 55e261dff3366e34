//! The test vector of `SPEC.md` Appendix A, built with this crate's own
//! encoders (`Manifest::to_bytes`, `OpHeader::encode`, `Header::to_bytes`,
//! `sign::sign`): its exact bytes, the sha256 values the appendix lists,
//! the results it promises for altered copies, and the framing sizes that
//! `SPEC.md` §2.6 quotes.

use fota_format::op::{Codec, Extent, OpContext, OpHeader, OpKind};
use fota_format::sign::{key_id, sign};
use fota_format::{
    Error, Header, Label, Manifest, Mode, OpAuth, Package, PatchDecoder, PatchStep, Profile,
    SigningKey, VerifyingKey, HEADER_LEN, MAX_MANIFEST_LEN, MAX_OP_HEAD_LEN, MIN_MANIFEST_LEN,
    SIGNED_HEADER_LEN,
};
use sha2::{Digest, Sha256};

/// RFC 8032 §7.1 TEST 1: a published key, never to be used for real.
const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const PUBLIC_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

/// The stored PATCH payload of `SPEC.md` §5.4 and its one extent.
const PATCH_PAYLOAD: [u8; 25] = [
    0x09, 0x02, 0x02, 0x03, 0x04, 0x00, 0x02, 0x00, 0x05, 0x01, 0x20, 0x03, 0x01, 0x09, 0x02, 0x02,
    0x02, 0x01, 0x03, 0x05, 0xfe, 0xaa, 0xbb, 0xcc, 0xdd,
];
const PATCH_EXTENT: Extent = Extent {
    offset: 0x110,
    len: 8,
};

/// The hex dump of Appendix A, as it stands there: `offset: bytes  # note`,
/// region titles on `--` lines.
const DUMP: &str = r##"
-- header (96 bytes, offset 0)
0000: 89 46 4f 54 41 0d 0a 1a                          # magic
0008: 02 00                                            # format_version 2
000a: 60 00                                            # header_len 96
000c: 86 00 00 00                                      # manifest_len 134
0010: 83 00 00 00 00 00 00 00                          # ops_len 131
0018: 21 fe 31 df a1 54 a2 61                          # key_id
0020: a3 6f 01 19 e9 62 99 8d a0 b9 8e 41 3b f5 d0 28  # signature R || S
0030: 31 41 4a d3 49 83 d3 a9 6b 20 29 18 1c d5 98 06
0040: 43 50 95 2b 0a 39 a7 d0 d1 bd 2d 14 dd 51 7c 18
0050: 82 c6 d6 29 80 6f 50 ba 19 b5 fe 54 f7 b6 c4 09
-- manifest (134 bytes, offset 96)
0060: 0b 61 63 6d 65 2d 73 65 6e 73 6f 72              # device_class: length 11, "acme-sensor"
006c: 05 31 2e 30 2e 30                                # from_version: length 5, "1.0.0"
0072: 05 31 2e 30 2e 31                                # to_version: length 5, "1.0.1"
0078: 07                                               # security_counter 7
0079: 00 01                                            # mode 0 (A/B), profile 1 (zstd)
007b: 80 02                                            # segment_size 256
007d: ac 02                                            # source_size 300
007f: 77 28 ae 2f 2c 36 e2 aa af be 79 ca 14 c8 7a e2  # source_sha256
008f: f8 9e 7c 88 c4 39 0e cb bf 82 dc e8 87 06 95 8d
009f: 8c 02                                            # target_size 268
00a1: 2a 9c a8 02 83 6c cc dc b4 17 19 24 5f ca 8c a8  # target_sha256
00b1: 7e 0e dc 23 8f 77 d0 42 e4 99 ea 5f 1c ec dd 7c
00c1: 02                                               # op_count 2
00c2: 00 00 00 00                                      # streams_len, xform_len, scratch_slots, flags: all 0
00c6: 01 e7 44 53 0e 28 32 c8 a4 cd 88 72 a1 a0 50 66  # first_op_sha256 (= sha256 of op 0)
00d6: 65 27 b9 60 2d da 8b 44 13 9d ad f2 70 1f ee eb
-- op 0 head (67 bytes, offset 230): FILL ff, segment 0
00e6: 04                                               # kind 4 (FILL) | codec 0 (stored) << 4
00e7: ff                                               # fill_value ff
00e8: 00                                               # segment index 0
00e9: 3d 68 76 a0 14 6d e8 57 6e b2 39 5a 85 8d e1 21  # dst_sha256
00f9: 3d 1b 92 c6 5b 77 9d f3 a3 31 cf d5 a4 58 45 46
0109: e3 79 b8 e1 74 6d dd 02 4f fb 3f d9 67 53 f4 e7  # next_op_sha256 (= sha256 of op 1)
0119: 0b f6 1f eb 74 5f 2b e9 2a d6 e0 13 9e c6 b6 54
-- op 1 head (39 bytes, offset 297): PATCH stored, segment 1, last op
0129: 02                                               # kind 2 (PATCH) | codec 0 (stored) << 4
012a: 01                                               # extent_count 1
012b: 19                                               # payload_len 25
012c: 01                                               # segment index 1
012d: 40 51 d7 d7 66 fe 38 c5 0f c2 e0 87 18 52 dc 3b  # dst_sha256
013d: 67 50 81 52 83 31 27 09 ba e5 82 36 d7 2a 5e da
014d: 90 02 08                                         # extent 0: gap 0x110, len 8
-- op 1 payload (25 bytes, offset 336): the PATCH of §5.4
0150: 09 02 02 03 04                                   # stream lengths 9, 2, 2, 3, 4 (§5.4)
0155: 00 02 00 05 01 20 03 01 09                       # ctrl
015e: 02 02                                            # zero_runs
0160: 02 01                                            # value_runs
0162: 03 05 fe                                         # values
0165: aa bb cc dd                                      # extra
"##;

/// The sha256 table of Appendix A.
const PUBLIC_KEY_SHA256: &str = "21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9";
const SOURCE_SHA256: &str = "7728ae2f2c36e2aaafbe79ca14c87ae2f89e7c88c4390ecbbf82dce88706958d";
const TARGET_SHA256: &str = "2a9ca802836cccdcb41719245fca8ca87e0edc238f77d042e499ea5f1cecdd7c";
const OP0_SHA256: &str = "01e744530e2832c8a4cd8872a1a050666527b9602dda8b44139dadf2701feeeb";
const OP1_SHA256: &str = "e379b8e1746ddd024ffb3fd96753f4e70bf61feb745f2be92ad6e0139ec6b654";
const PACKAGE_SHA256: &str = "77a4928474daba00a4795fced54aba8375c53c6185fd8c03cbd7040ff047d167";
const PACKAGE_LEN: usize = 361;

/// Package offsets of the regions of the vector.
const MANIFEST_AT: usize = 96;
const OP0_AT: usize = 230;
const OP1_AT: usize = 297;
const PAYLOAD_AT: usize = 336;

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "{s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The bytes of [`DUMP`], checking that each line's offset is where the
/// lines before it end.
fn dump_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    for line in DUMP.lines() {
        let line = line.split('#').next().unwrap().trim();
        if line.is_empty() || line.starts_with("--") {
            continue;
        }
        let (at, bytes) = line.split_once(':').unwrap();
        assert_eq!(usize::from_str_radix(at, 16).unwrap(), out.len(), "{line}");
        for b in bytes.split_whitespace() {
            out.push(u8::from_str_radix(b, 16).unwrap());
        }
    }
    out
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&unhex(SEED).try_into().unwrap())
}

fn public_key() -> VerifyingKey {
    key().verifying_key()
}

fn source() -> Vec<u8> {
    (0..300u32).map(|i| i as u8).collect()
}

fn target() -> Vec<u8> {
    let mut t = vec![0xff; 256];
    t.extend_from_slice(&[
        0xaa, 0xbb, 0x10, 0x11, 0x15, 0x18, 0x14, 0xcc, 0x10, 0x0f, 0x12, 0xdd,
    ]);
    t
}

/// The manifest of the vector, before the chain head is known.
fn manifest() -> Manifest {
    Manifest {
        device_class: Label::new("acme-sensor").unwrap(),
        from_version: Label::new("1.0.0").unwrap(),
        to_version: Label::new("1.0.1").unwrap(),
        security_counter: 7,
        mode: Mode::AB,
        profile: Profile::Zstd,
        segment_size: 256,
        source_size: 300,
        source_sha256: sha256(&source()),
        target_size: 268,
        target_sha256: sha256(&target()),
        op_count: 2,
        op_auth: fota_format::OpAuth::Chain,
        first_op_sha256: [0; 32],
        release_notes_sha256: [0; 32],
        scratch_slots: 0,
        xform_len: 0,
        streams_len: 0,
    }
}

/// Builds the vector: ops last to first (each carries the next one's
/// hash), then the manifest with the chain head, then the signed header.
fn build() -> Vec<u8> {
    build_with(OpAuth::Chain)
}

/// The vector's ops, authenticated by `auth`: with [`OpAuth::Signature`]
/// (format version 3) no op hash is on the wire and the signature covers
/// the op section's sha256.
fn build_with(auth: OpAuth) -> Vec<u8> {
    let mut m = Manifest {
        op_auth: auth,
        ..manifest()
    };
    let target = target();
    let op1_header = OpHeader {
        kind: OpKind::Patch,
        codec: Codec::Stored,
        fill_value: 0,
        extent_count: 1,
        payload_len: PATCH_PAYLOAD.len() as u32,
        decoded_len: PATCH_PAYLOAD.len() as u32,
        dst_offset: 256,
        dst_len: 12,
        dst_sha256: sha256(&target[256..]),
        // A/B: not on the wire.
        src_sha256: [0; 32],
        // The last op: not on the wire.
        next_op_sha256: [0; 32],
    };
    let mut op1 = op1_header
        .encode(&[PATCH_EXTENT], &OpContext::new(&m, 1))
        .to_vec();
    op1.extend_from_slice(&PATCH_PAYLOAD);
    let op0_header = OpHeader {
        kind: OpKind::Fill,
        codec: Codec::Stored,
        fill_value: 0xff,
        extent_count: 0,
        payload_len: 0,
        decoded_len: 0,
        dst_offset: 0,
        dst_len: 256,
        dst_sha256: sha256(&target[..256]),
        src_sha256: [0; 32],
        next_op_sha256: sha256(&op1),
    };
    let op0 = op0_header.encode(&[], &OpContext::new(&m, 0)).to_vec();
    m.first_op_sha256 = sha256(&op0);
    let manifest = m.to_bytes();
    let key = key();
    let mut header = Header {
        op_auth: auth,
        manifest_len: manifest.len() as u32,
        ops_len: (op0.len() + op1.len()) as u64,
        key_id: key_id(&key.verifying_key()),
        signature: [0; 64],
    };
    let signed: [u8; SIGNED_HEADER_LEN] =
        header.to_bytes()[..SIGNED_HEADER_LEN].try_into().unwrap();
    let ops_sha256 = match auth {
        OpAuth::Chain => None,
        OpAuth::Signature => Some(sha256(&[&op0[..], &op1[..]].concat())),
    };
    header.signature = sign(&key, &signed, &manifest, ops_sha256.as_ref());
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&op0);
    out.extend_from_slice(&op1);
    out
}

#[test]
fn vector_bytes_match_the_appendix() {
    let bytes = build();
    assert_eq!(hex(&bytes), hex(&dump_bytes()));
    assert_eq!(bytes.len(), PACKAGE_LEN);
    let header = Header::parse(&bytes).unwrap();
    assert_eq!(HEADER_LEN, MANIFEST_AT);
    assert_eq!(header.ops_offset(), OP0_AT as u64);
    assert_eq!(header.package_len(), Some(PACKAGE_LEN as u64));
    let ops: Vec<_> = Package::parse(&bytes)
        .unwrap()
        .verify(&[public_key()])
        .unwrap()
        .ops()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        ops.iter()
            .map(|op| (op.offset, op.payload_offset))
            .collect::<Vec<_>>(),
        [
            (OP0_AT as u64, OP1_AT as u64),
            (OP1_AT as u64, PAYLOAD_AT as u64)
        ]
    );
}

#[test]
fn hashes_match_the_appendix() {
    let bytes = build();
    let public = public_key();
    assert_eq!(hex(public.as_bytes()), PUBLIC_KEY);
    assert_eq!(hex(&sha256(public.as_bytes())), PUBLIC_KEY_SHA256);
    assert_eq!(key_id(&public), sha256(public.as_bytes())[..8]);
    assert_eq!(hex(&sha256(&source())), SOURCE_SHA256);
    assert_eq!(hex(&sha256(&target())), TARGET_SHA256);
    assert_eq!(hex(&sha256(&bytes[OP0_AT..OP1_AT])), OP0_SHA256);
    assert_eq!(hex(&sha256(&bytes[OP1_AT..])), OP1_SHA256);
    assert_eq!(hex(&sha256(&bytes)), PACKAGE_SHA256);
    // The chain: the manifest's last 32 bytes are op 0's hash, the op 0
    // head's last 32 bytes op 1's.
    assert_eq!(hex(&bytes[OP0_AT - 32..OP0_AT]), OP0_SHA256);
    assert_eq!(hex(&bytes[OP1_AT - 32..OP1_AT]), OP1_SHA256);
}

#[test]
fn vector_verifies_and_applies_to_the_target() {
    let bytes = build();
    let pkg = Package::parse(&bytes).unwrap();
    let verified = pkg.verify(&[public_key()]).unwrap();
    let class = Label::new("acme-sensor").unwrap();
    verified.check_device(&class, 7).unwrap();
    let source = source();
    verified.check_source(&source).unwrap();
    let m = *verified.manifest();
    assert_eq!(m.first_op_sha256, unhex(OP0_SHA256)[..]);
    assert_eq!(
        Manifest {
            op_auth: fota_format::OpAuth::Chain,
            first_op_sha256: [0; 32],
            ..m
        },
        manifest()
    );
    let ops: Vec<_> = verified.ops().map(Result::unwrap).collect();
    assert_eq!(ops.len(), 2);
    let (fill, patch) = (&ops[0], &ops[1]);
    assert_eq!(fill.index, 0);
    assert_eq!(fill.header.kind, OpKind::Fill);
    assert_eq!(fill.header.fill_value, 0xff);
    assert_eq!((fill.header.dst_offset, fill.header.dst_len), (0, 256));
    assert_eq!(fill.header.next_op_sha256, unhex(OP1_SHA256)[..]);
    assert!(fill.extents.as_slice().is_empty() && fill.payload.is_empty());
    assert_eq!(patch.index, 1);
    assert_eq!(
        (patch.header.kind, patch.header.codec),
        (OpKind::Patch, Codec::Stored)
    );
    assert_eq!((patch.header.dst_offset, patch.header.dst_len), (256, 12));
    assert_eq!(
        (patch.header.payload_len, patch.header.decoded_len),
        (25, 25)
    );
    assert_eq!(patch.header.src_sha256, [0; 32]);
    assert_eq!(patch.header.next_op_sha256, [0; 32]);
    assert_eq!(patch.extents.as_slice(), [PATCH_EXTENT]);
    assert_eq!(patch.payload, PATCH_PAYLOAD);

    // Apply: FILL, then the stored PATCH (§5) over the source.
    let mut out = Vec::new();
    for op in &ops {
        let h = &op.header;
        let segment = match h.kind {
            OpKind::Fill => vec![h.fill_value; h.dst_len as usize],
            OpKind::Patch => {
                let mut seg = Vec::new();
                let extents = op.extents.as_slice();
                let mut d = PatchDecoder::new(
                    op.index,
                    op.payload,
                    h.dst_offset,
                    h.dst_len.into(),
                    extents,
                )
                .unwrap();
                while let Some(step) = d.next() {
                    match step.unwrap() {
                        PatchStep::Add { src, len } => {
                            let mut chunk = source[src as usize..(src + len) as usize].to_vec();
                            d.add_diff(&mut chunk).unwrap();
                            seg.extend_from_slice(&chunk);
                        }
                        PatchStep::Literal(b) => seg.extend_from_slice(b),
                    }
                }
                seg
            }
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(sha256(&segment), h.dst_sha256);
        assert_eq!(out.len() as u64, h.dst_offset);
        out.extend_from_slice(&segment);
    }
    assert_eq!(out, target());
    assert_eq!(sha256(&out), m.target_sha256);
}

/// The "Expected results" paragraph of Appendix A.
#[test]
fn altered_vectors_are_refused_as_the_appendix_says() {
    let good = build();
    let trusted = [public_key()];
    let flip = |at: usize, bit: u8| {
        let mut b = good.clone();
        b[at] ^= 1 << bit;
        b
    };
    let check = |bytes: &[u8]| -> Result<(), Error> {
        let verified = Package::parse(bytes)?.verify(&trusted)?;
        verified.check_device(&Label::new("acme-sensor").unwrap(), 7)?;
        for op in verified.ops() {
            op?;
        }
        Ok(())
    };
    let refusal = |bytes: &[u8]| check(bytes).expect_err("accepted");
    assert_eq!(check(&good), Ok(()));
    assert_eq!(
        refusal(&flip(8, 2)),
        Error::UnsupportedVersion {
            found: 6,
            supported: 3
        }
    );
    // Version 3 is read, but the version is signed: a version-2 package
    // made to say 3 fails its signature, which then covers the op section.
    assert_eq!(refusal(&flip(8, 0)), Error::BadSignature);
    assert!(matches!(refusal(&flip(24, 0)), Error::UnknownKey { .. }));
    assert_eq!(refusal(&flip(40, 0)), Error::BadSignature);
    // Mode (package offset 121): signed.
    assert_eq!(refusal(&flip(121, 0)), Error::BadSignature);
    // Op 0's fill value: the head still parses, its hash differs.
    assert_eq!(
        refusal(&flip(OP0_AT + 1, 0)),
        Error::OpHashMismatch {
            op_index: 0,
            offset: OP0_AT as u64
        }
    );
    // A byte of op 1's payload.
    assert_eq!(
        refusal(&flip(PAYLOAD_AT + 5, 0)),
        Error::OpHashMismatch {
            op_index: 1,
            offset: OP1_AT as u64
        }
    );
    // Op 1's codec nibble 0 -> 4: the head is parsed before its hash is
    // checked, so its own rules refuse it first.
    assert!(matches!(
        refusal(&flip(OP1_AT, 6)),
        Error::InvalidField { offset, found: 4, .. } if offset == OP1_AT as u64
    ));
    let verified = Package::parse(&good).unwrap().verify(&trusted).unwrap();
    assert_eq!(
        verified.check_device(&Label::new("acme-sensor").unwrap(), 8),
        Err(Error::SecurityCounterTooLow {
            package: 7,
            device: 8
        })
    );
    assert!(matches!(
        refusal(&good[..good.len() - 1]),
        Error::Truncated { offset, .. } if offset == OP0_AT as u64
    ));
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(
        refusal(&longer),
        Error::TrailingBytes {
            offset: PACKAGE_LEN as u64,
            count: 1
        }
    );
}

/// The bounds `SPEC.md` quotes (§1.1, §2.1, §2.2, §2.3).
#[test]
fn bounds_quoted_in_the_spec() {
    assert_eq!(MIN_MANIFEST_LEN, 79);
    assert_eq!(MAX_MANIFEST_LEN, 285);
    assert_eq!(HEADER_LEN + MAX_MANIFEST_LEN, 381);
    assert_eq!(MAX_OP_HEAD_LEN, 433);
    assert_eq!(fota_format::streams::MAX_STREAMS_LEN, 327_776);
    assert_eq!(fota_format::xform::MAX_XFORM_LEN, 66_092);
}

/// The framing of a one-op A/B PATCH package (`SPEC.md` §2.6): header,
/// manifest and op head, everything but the payload.
#[test]
fn one_op_framing_sizes() {
    // Version 1: header, fixed manifest, fixed op header, one extent record.
    let v1 = 96 + 272 + 128 + 16;
    assert_eq!(v1, 512);
    // Version 2: the labels of the vector, a 4 KiB segment and images, a
    // tiny PATCH with a 100-byte payload reading the whole source.
    let mut m = Manifest {
        profile: Profile::Tiny,
        segment_size: 4096,
        source_size: 4096,
        target_size: 4096,
        op_count: 1,
        ..manifest()
    };
    let patch = OpHeader {
        kind: OpKind::Patch,
        codec: Codec::Tiny,
        fill_value: 0,
        extent_count: 1,
        payload_len: 100,
        decoded_len: 4096,
        dst_offset: 0,
        dst_len: 4096,
        // The segment is the whole target.
        dst_sha256: m.target_sha256,
        src_sha256: [0; 32],
        next_op_sha256: [0; 32],
    };
    let whole = [Extent {
        offset: 0,
        len: 4096,
    }];
    let ctx = OpContext::new(&m, 0);
    assert!(ctx.last);
    let head = patch.encode(&whole, &ctx);
    // Kind|codec, extent count, payload length, segment index, extent (gap
    // 0, length 4096): no segment hash (the target's), no source hash
    // (A/B), no next-op hash (the last op).
    assert_eq!(head.len(), 1 + 1 + 1 + 1 + 1 + 2);
    let mut op = head.to_vec();
    op.extend_from_slice(&[0x5a; 100]);
    m.first_op_sha256 = sha256(&op);
    let manifest_bytes = m.to_bytes();
    assert_eq!(manifest_bytes.len(), 134);
    let key = key();
    let mut header = Header {
        op_auth: fota_format::OpAuth::Chain,
        manifest_len: manifest_bytes.len() as u32,
        ops_len: op.len() as u64,
        key_id: key_id(&key.verifying_key()),
        signature: [0; 64],
    };
    let signed: [u8; SIGNED_HEADER_LEN] =
        header.to_bytes()[..SIGNED_HEADER_LEN].try_into().unwrap();
    header.signature = sign(&key, &signed, &manifest_bytes, None);
    let mut package = header.to_bytes().to_vec();
    package.extend_from_slice(&manifest_bytes);
    package.extend_from_slice(&op);
    assert_eq!(package.len() - 100, 96 + 134 + 7);
    assert_eq!(package.len() - 100, 237);
    assert_eq!(v1 + 100, 612);
    assert_eq!(package.len(), 337);
    // It is a package: the op parses, with the target's hash as its
    // segment's.
    let verified = Package::parse(&package)
        .unwrap()
        .verify(&[public_key()])
        .unwrap();
    let ops: Vec<_> = verified.ops().map(Result::unwrap).collect();
    assert_eq!(ops.len(), 1);
    assert_eq!(ops[0].header, patch);
    assert_eq!(ops[0].extents.as_slice(), whole);

    // A zstd PATCH also carries its decoded length (here 2 bytes).
    let zstd = OpHeader {
        codec: Codec::Zstd,
        decoded_len: 5000,
        ..patch
    };
    let m_zstd = Manifest {
        profile: Profile::Zstd,
        ..m
    };
    assert_eq!(
        zstd.encode(&whole, &OpContext::new(&m_zstd, 0)).len(),
        head.len() + 2
    );
    // When the target has more than one segment, the head carries the
    // segment's hash.
    let two = Manifest {
        target_size: 8192,
        op_count: 2,
        ..m
    };
    let last = OpContext::new(&two, 1);
    assert!(last.last);
    assert_eq!(patch.encode(&whole, &last).len(), head.len() + 32);
    // The smallest such manifest: empty labels, counter and sizes below
    // 128: the shortest manifest plus the chain head.
    let smallest = Manifest {
        device_class: Label::EMPTY,
        from_version: Label::EMPTY,
        to_version: Label::EMPTY,
        security_counter: 0,
        segment_size: 256,
        source_size: 100,
        target_size: 100,
        ..m
    };
    assert_eq!(smallest.to_bytes().len(), MIN_MANIFEST_LEN + 32);
}

/// The vector signed whole (format version 3): the same ops without the
/// chain's two hashes, 64 bytes shorter; it verifies and applies, and a
/// change to any byte of its op section, or of its version, is refused.
#[test]
fn the_vector_signed_whole_is_64_bytes_shorter_and_every_op_byte_is_signed() {
    let chained = build();
    let whole = build_with(OpAuth::Signature);
    assert_eq!(whole.len() + 64, chained.len());
    assert_eq!(&whole[8..10], &[3, 0]);
    let trusted = [public_key()];
    let check = |bytes: &[u8]| -> Result<(), Error> {
        let verified = Package::parse(bytes)?.verify(&trusted)?;
        for op in verified.ops() {
            op?;
        }
        Ok(())
    };
    assert_eq!(check(&whole), Ok(()));
    let p = Package::parse(&whole).unwrap();
    let m = p.verify(&trusted).unwrap().manifest().to_owned();
    assert_eq!((m.op_auth, m.first_op_sha256), (OpAuth::Signature, [0; 32]));
    let ops_at = p.header().ops_offset() as usize;
    for at in ops_at..whole.len() {
        let mut bad = whole.clone();
        bad[at] ^= 0x01;
        assert_eq!(check(&bad), Err(Error::BadSignature), "byte {at}");
    }
    // Read as version 2, its manifest and ops would lack their hashes;
    // the version is signed, so it never gets that far.
    let mut v2 = whole.clone();
    v2[8] = 2;
    assert_eq!(check(&v2), Err(Error::BadSignature));
}

/// A version-3 manifest must be A/B: the op section is read once to be
/// checked and again to be applied, and only an A/B target is checked
/// whole before it is used. Refused at the mode field.
#[test]
fn a_package_signed_whole_is_a_b_only() {
    let m = Manifest {
        op_auth: OpAuth::Signature,
        mode: Mode::InPlace,
        op_count: 3,
        ..manifest()
    };
    // The labels (1 + 11, 1 + 5, 1 + 5) and the counter come first.
    let mode_at = (HEADER_LEN + 12 + 6 + 6 + 1) as u64;
    let bytes = m.to_bytes();
    assert_eq!(bytes[mode_at as usize - HEADER_LEN], Mode::InPlace as u8);
    assert!(matches!(
        Manifest::parse_with(&bytes, OpAuth::Signature),
        Err(Error::InvalidField { offset, .. }) if offset == mode_at
    ));
}
