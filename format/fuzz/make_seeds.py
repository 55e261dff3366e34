#!/usr/bin/env python3
"""Regenerates the seed corpus in corpus/<target>/ from real packages.

    cargo build --release -p fota          # from the repository root
    python3 format/fuzz/make_seeds.py [path/to/fota]
    python3 format/fuzz/make_seeds.py --tiny-only [path/to/fota]

Needs the `fota` binary (default: target/release/fota) and the `zstd` CLI
(to pull decoded PATCH payloads out of zstd ops; LZMA ops are decoded with
Python's lzma module, and also give the `lzma_payload` seeds). Images are pseudo-random
with a fixed seed; packages are signed with the fuzzing test key of
src/lib.rs (FUZZ_KEY_SEED), so they verify in the `parse_package` target.
The ed25519 signature is deterministic, so a rerun writes the same files
unless the generator's output changes. Old seeds are removed first, except
files named `crash-*` / `regress-*` (regression inputs from fuzzing).
`--tiny-only` regenerates only the tiny-profile seeds (`pkg-*-tiny` and
corpus/tiny_decoder/).

Packages are read with a small parser of format versions 2 and 3 (`parse_package`
below: the fixed header, the varint manifest, variable-length op heads),
which follows the field layout of `Manifest::parse` and `OpHead::parse` of
src/ (the structure only: it leaves the value rules to them); the `mut-*`
mutants use it to find the field each one changes. After a change of the
wire format, update it together with those.
"""

import base64
import hashlib
import lzma
import os
import random
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
ARGS = [a for a in sys.argv[1:] if a != "--tiny-only"]
TINY_ONLY = "--tiny-only" in sys.argv[1:]
FOTA = ARGS[0] if ARGS else os.path.join(ROOT, "target", "release", "fota")

# Must match FUZZ_KEY_SEED in src/lib.rs. A test key, public on purpose.
KEY_SEED = bytes.fromhex("237257ed17f4951c0630fea0f00534fe48aa86a5de17095f1621e65548a7b8c0")

MAGIC = b"\x89FOTA\r\n\x1a"
FORMAT_VERSIONS = (2, 3)  # 2: ops in a hash chain; 3: ops covered by the signature
HEADER_LEN = 96  # fixed; the manifest and op heads that follow are varint-coded
LABEL_LEN = 32
MAX_VARINT_LEN = 10
MAX_EXTENTS = 16
U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1
COPY, PATCH, NEW, FILL, SKIP, STASH, XFORM, STREAMS = 1, 2, 3, 4, 5, 6, 7, 8
STORED, ZSTD, TINY, LZMA = 0, 1, 2, 3
AB, IN_PLACE = 0, 1
FLAG_RELEASE_NOTES = 1

PKG_DIR = os.path.join(HERE, "corpus", "parse_package")
PATCH_DIR = os.path.join(HERE, "corpus", "patch_decoder")
TINY_DIR = os.path.join(HERE, "corpus", "tiny_decoder")
LZMA_DIR = os.path.join(HERE, "corpus", "lzma_payload")


def pem_key(path):
    der = bytes.fromhex("302e020100300506032b657004220420") + KEY_SEED
    b64 = base64.b64encode(der).decode()
    with open(path, "w") as f:
        f.write("-----BEGIN PRIVATE KEY-----\n" + b64 + "\n-----END PRIVATE KEY-----\n")


def clean(d):
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if not name.startswith(("crash-", "regress-")):
            os.remove(os.path.join(d, name))


def write(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------ images

def images():
    rnd = random.Random(20240601)
    rb = lambda n: bytes(rnd.getrandbits(8) for _ in range(n))
    pairs = {}
    base = rb(2048)
    edited = bytearray(base)
    for _ in range(12):
        edited[rnd.randrange(len(edited))] ^= 1 << rnd.randrange(8)
    pairs["edits"] = (base, bytes(edited))
    old = rb(3000)
    pairs["moved-block"] = (old, old[:400] + old[1400:1900] + old[400:1400] + old[1900:])
    pairs["identical"] = (old[:1500], old[:1500])
    pairs["empty-old"] = (b"", rb(700))
    pairs["empty-new"] = (rb(600), b"")
    pairs["all-ff"] = (rb(1024), b"\xff" * 1024)
    # Code-like: 4-byte little-endian "pointers" that all shift a little,
    # so matches are approximate and the diff is sparse non-zero bytes.
    words = [rnd.randrange(0x1000, 0x8000) for _ in range(600)]
    code_old = b"".join(struct.pack("<I", w) for w in words)
    code_new = b"".join(struct.pack("<I", w + 0x40 if i % 3 == 0 else w) for i, w in enumerate(words))
    pairs["code-shift"] = (code_old, code_new)
    ins = rb(1800)
    pairs["insert"] = (ins, ins[:500] + rb(90) + ins[500:1300] + ins[1350:] + rb(40))
    pairs["zeros-grow"] = (bytes(300), bytes(300) + rb(20) + bytes(900))
    pairs["text"] = (
        b"".join(b"line %05d: the quick brown fox\n" % i for i in range(60)),
        b"".join(b"line %05d: the quick brown cat\n" % (i * 2) for i in range(60)),
    )
    return pairs


# ---------------------------------------------------------------- packages

class Malformed(Exception):
    """The bytes do not parse the way fota-format would parse them."""


def read_varint(data, pos, max_value=U64_MAX):
    """A minimal LEB128 varint of at most 10 bytes and `max_value`, as
    `Reader::varint` in src/bytes.rs reads it: (value, position after)."""
    v = 0
    for i in range(MAX_VARINT_LEN):
        if pos + i >= len(data):
            raise Malformed("varint at %d truncated" % pos)
        b = data[pos + i]
        bits = b & 0x7F
        if i == MAX_VARINT_LEN - 1 and bits > 1:
            raise Malformed("varint at %d above 64 bits" % pos)
        v |= bits << (7 * i)
        if b < 0x80:
            if i > 0 and b == 0:
                raise Malformed("varint at %d not minimal" % pos)
            if v > max_value:
                raise Malformed("varint at %d: %d above %d" % (pos, v, max_value))
            return v, pos + i + 1
    raise Malformed("varint at %d longer than %d bytes" % (pos, MAX_VARINT_LEN))


class Cursor:
    """Reads fields from `data`, starting at `pos`."""

    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Malformed("%d bytes at %d truncated" % (n, self.pos))
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self):
        return self.take(1)[0]

    def varint(self, max_value=U64_MAX):
        v, self.pos = read_varint(self.data, self.pos, max_value)
        return v


def parse_header(pkg):
    """The fixed header (src/header.rs): (manifest_len, ops_len, version)."""
    if len(pkg) < HEADER_LEN or pkg[:8] != MAGIC:
        raise Malformed("no package header")
    version, header_len, manifest_len, ops_len = struct.unpack_from("<HHIQ", pkg, 8)
    if version not in FORMAT_VERSIONS or header_len != HEADER_LEN:
        raise Malformed("format version %d, header length %d" % (version, header_len))
    return manifest_len, ops_len, version


def parse_manifest(m, version):
    """The manifest's fields (the layout of `Manifest::parse`,
    src/manifest.rs, not its value rules), given its
    `manifest_len` bytes. Field values, plus `*_at`: offsets inside the
    manifest of the mode byte and the first byte of the op count varint."""
    r = Cursor(m)
    out = {}
    for label in ("device_class", "from_version", "to_version"):
        n = r.u8()
        if n > LABEL_LEN:
            raise Malformed("%s is %d bytes long" % (label, n))
        text = r.take(n)
        if b"\0" in text:
            raise Malformed("%s contains NUL" % label)
        out[label] = text.decode("utf-8")
    out["security_counter"] = r.varint()
    out["mode_at"] = r.pos
    out["mode"] = r.u8()
    out["profile"] = r.u8()
    out["segment_size"] = r.varint(U32_MAX)
    out["source_size"] = r.varint()
    out["source_sha256"] = r.take(32)
    out["target_size"] = r.varint()
    out["target_sha256"] = r.take(32)
    out["op_count_at"] = r.pos
    out["op_count"] = r.varint(U32_MAX)
    out["streams_len"] = r.varint(U32_MAX)
    out["xform_len"] = r.varint(U32_MAX)
    out["scratch_slots"] = r.varint(U32_MAX)
    flags = r.u8()
    if out["mode"] not in (AB, IN_PLACE) or out["profile"] not in (1, 2) or flags & ~FLAG_RELEASE_NOTES:
        raise Malformed("mode %d, profile %d, flags %d" % (out["mode"], out["profile"], flags))
    seg = out["segment_size"]
    if not (256 <= seg <= 1 << 28) or seg % 256:
        raise Malformed("segment size %d" % seg)
    # An empty target has no ops, so no chain head either; nor has a
    # version-3 package, whose signature covers its ops.
    out["version"] = version
    chained = version == 2
    out["first_op_sha256"] = r.take(32) if out["op_count"] and chained else bytes(32)
    out["release_notes_sha256"] = r.take(32) if flags & FLAG_RELEASE_NOTES else bytes(32)
    if flags & FLAG_RELEASE_NOTES and out["release_notes_sha256"] == bytes(32):
        raise Malformed("release notes flag with an all-zero hash")
    if r.pos != len(m):
        raise Malformed("%d bytes after the manifest" % (len(m) - r.pos))
    return out


class Op:
    """One op as `OpHead::parse` (src/op.rs) reads it; `pos`, `ext_at`
    (where its extents start) and `pay_at` are package offsets."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    @property
    def end(self):
        return self.pay_at + self.payload_len


def parse_op_head(pkg, pos, manifest, index):
    """The op head at package offset `pos`, op `index` of `manifest`:
    the fields present for its kind, codec, the manifest's mode and whether
    it is the last op, and the fields its context gives (`OpContext`)."""
    mode, seg, target = manifest["mode"], manifest["segment_size"], manifest["target_size"]
    last = index + 1 >= manifest["op_count"]
    r = Cursor(pkg, pos)
    byte = r.u8()
    kind, codec = byte & 0x0F, byte >> 4
    if not COPY <= kind <= STREAMS or codec > LZMA:
        raise Malformed("op %d at %d: kind %d, codec %d" % (index, pos, kind, codec))
    if codec != STORED and kind not in (PATCH, NEW):
        raise Malformed("op %d at %d: codec %d for kind %d" % (index, pos, codec, kind))
    fill_value = r.u8() if kind == FILL else 0
    if kind in (COPY, PATCH):
        extent_count = r.varint()
        if not 1 <= extent_count <= MAX_EXTENTS:
            raise Malformed("op %d at %d: %d extents" % (index, pos, extent_count))
    else:
        extent_count = 1 if kind == STASH else 0
    payload_len = r.varint(U32_MAX) if kind in (PATCH, NEW, XFORM, STREAMS) else 0
    if kind in (XFORM, STREAMS) and payload_len == 0:
        raise Malformed("op %d at %d: empty xform or streams payload" % (index, pos))
    wire_decoded = r.varint(U32_MAX) if kind == PATCH and codec in (ZSTD, LZMA) else None
    has_segment = kind not in (XFORM, STREAMS)
    slot = r.varint(U32_MAX) if has_segment else 0
    # The segment hash of an op whose segment is the whole target is the
    # manifest's target sha256 and not on the wire (`OpContext::whole_target`).
    whole_target = kind != STASH and slot * seg == 0 and target <= seg
    if not has_segment:
        dst_sha256 = bytes(32)
    elif whole_target:
        dst_sha256 = manifest["target_sha256"]
    else:
        dst_sha256 = r.take(32)
    src_sha256 = r.take(32) if mode == IN_PLACE and kind in (COPY, PATCH) else bytes(32)
    next_op_sha256 = bytes(32) if last or manifest["version"] != 2 else r.take(32)
    ext_at = r.pos
    extents, prev_end = [], 0
    for _ in range(extent_count):
        gap = r.varint()
        length = r.varint()
        offset = prev_end + gap
        if offset > U64_MAX or length == 0 or offset + length > U64_MAX:
            raise Malformed("op %d at %d: extent (%d, %d)" % (index, pos, offset, length))
        extents.append((offset, length))
        prev_end = offset + length
    if kind == STASH:
        dst_len = sum(l for _, l in extents)
        if dst_len > U32_MAX:
            raise Malformed("op %d at %d: stash of %d bytes" % (index, pos, dst_len))
    elif kind in (XFORM, STREAMS):
        dst_len = 0
    else:
        dst_len = max(0, min(target - slot * seg, seg))
    if wire_decoded is not None:
        decoded_len = wire_decoded
    elif kind == NEW or (kind == PATCH and codec == TINY):
        decoded_len = dst_len
    else:
        decoded_len = payload_len
    if kind == PATCH and decoded_len > 3 * dst_len + 1024:
        raise Malformed("op %d at %d: decoded length %d" % (index, pos, decoded_len))
    if kind == NEW and codec == STORED and payload_len != dst_len:
        raise Malformed("op %d at %d: stored new of %d bytes" % (index, pos, payload_len))
    return Op(
        index=index, pos=pos, kind=kind, codec=codec, fill_value=fill_value,
        payload_len=payload_len, decoded_len=decoded_len, dst_off=slot * seg,
        dst_len=dst_len, dst_sha256=dst_sha256, src_sha256=src_sha256,
        next_op_sha256=next_op_sha256, extents=extents, ext_at=ext_at, pay_at=r.pos,
    )


def parse_package(pkg):
    """(manifest, ops, manifest offset) of a whole, well-framed package."""
    manifest_len, ops_len, version = parse_header(pkg)
    if HEADER_LEN + manifest_len + ops_len != len(pkg):
        raise Malformed("package length %d, header says %d" % (len(pkg), HEADER_LEN + manifest_len + ops_len))
    m = parse_manifest(pkg[HEADER_LEN : HEADER_LEN + manifest_len], version)
    pos, out = HEADER_LEN + manifest_len, []
    for index in range(m["op_count"]):
        op = parse_op_head(pkg, pos, m, index)
        if op.end > len(pkg):
            raise Malformed("op %d at %d: payload past the end" % (index, pos))
        op.payload = pkg[op.pay_at : op.end]
        out.append(op)
        pos = op.end
    if pos != len(pkg):
        raise Malformed("%d bytes after the last op" % (len(pkg) - pos))
    return m, out


def ops(pkg):
    return parse_package(pkg)[1]


def patch_seed(flags_misuse, seed, dst_off, dst_len, extents, payload):
    out = bytes([len(extents) | (flags_misuse << 5), seed])
    out += struct.pack("<QI", dst_off, dst_len)
    for o, l in extents:
        out += struct.pack("<QQ", o, l)
    return out + payload


def fota_diff(key, o, n, out, seg, extra):
    subprocess.run(
        [FOTA, "diff", "--key", key, "--threads", "1", "--segment-size", str(seg)] + extra
        + ["--device-class", "fuzz-board", "--from-version", "1.0",
           "--to-version", "1.1", "--security-counter", "3", o, n, "-o", out],
        check=True, stdout=subprocess.DEVNULL,
    )
    return open(out, "rb").read()


def write_pair(tmp, name, old, new):
    o, n = os.path.join(tmp, name + ".old"), os.path.join(tmp, name + ".new")
    open(o, "wb").write(old)
    open(n, "wb").write(new)
    return o, n


def make_packages(tmp, key):
    pairs = images()
    made = {}
    for name, (old, new) in pairs.items():
        o, n = write_pair(tmp, name, old, new)
        for seg, level in ((256, 1), (1024, 19), (256, 19)):
            if seg == 256 and level == 19 and name not in ("code-shift", "moved-block", "edits"):
                continue
            out = os.path.join(tmp, "%s-s%d-l%d.fota" % (name, seg, level))
            made[os.path.basename(out)[: -len(".fota")]] = fota_diff(key, o, n, out, seg, ["--level", str(level)])
        # A/B packages are format v3 by default; the same with the hash
        # chain (v2).
        out = os.path.join(tmp, "%s-s1024-l19-chain.fota" % name)
        made[os.path.basename(out)[: -len(".fota")]] = fota_diff(
            key, o, n, out, 1024, ["--level", "19", "--chain"]
        )
    return made


def make_tiny_packages(tmp, key):
    """Profile tiny packages: PATCH and NEW ops with tiny streams."""
    pairs = images()
    made = {}
    for name in ("edits", "moved-block", "code-shift", "insert", "text", "empty-old"):
        old, new = pairs[name]
        o, n = write_pair(tmp, name, old, new)
        for seg in (256, 1024):
            out = os.path.join(tmp, "%s-s%d-tiny.fota" % (name, seg))
            made[os.path.basename(out)[: -len(".fota")]] = fota_diff(key, o, n, out, seg, ["--profile", "tiny"])
    return made


def decode_lzma(payload):
    """An LZMA payload (SPEC.md §5e) decoded with Python's raw LZMA1."""
    layout, count, pos = payload[0], payload[1], 2
    table = []
    for _ in range(count):
        props = payload[pos]
        unpacked, pos = read_varint(payload, pos + 1)
        packed, pos = read_varint(payload, pos)
        table.append((props, unpacked, packed))
    streams = []
    for props, unpacked, packed in table:
        data = payload[pos : pos + packed]
        pos += packed
        if props != 0xFF:
            lc, lp, pb = props % 9, props // 9 % 5, props // 45
            f = {"id": lzma.FILTER_LZMA1, "lc": lc, "lp": lp, "pb": pb, "dict_size": 1 << 26}
            data = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[f]).decompress(data, unpacked)
        assert len(data) == unpacked
        streams.append(data)
    if layout == 0:
        return b"".join(streams)
    ctrl, diff, extra = streams
    return encode_patch_ctrl(ctrl, diff, extra)


def decode_payload(codec, payload):
    if codec == STORED:
        return payload
    if codec == LZMA:
        return decode_lzma(payload)
    return subprocess.run(["zstd", "-d", "-c"], input=payload, stdout=subprocess.PIPE, check=True).stdout


def variants(name, pkg):
    """Hand-made mutants of a real package, each aimed at one field."""
    m, pkg_ops = parse_package(pkg)
    manifest_len, _, version = parse_header(pkg)
    v = {}
    v["trunc-header"] = pkg[:50]
    v["trunc-manifest"] = pkg[: HEADER_LEN + manifest_len // 2]
    v["trunc-ops"] = pkg[: len(pkg) - 7]
    v["trailing-byte"] = pkg + b"\0"
    # A byte of op 0's extents or payload (neither is in its head's fixed
    # fields): breaks only the hash chain, or the extent rules.
    op0 = pkg_ops[0]
    body = op0.end - op0.ext_at
    assert body > 0, "%s: op 0 has neither extents nor payload" % name
    flip = bytearray(pkg)
    flip[op0.ext_at + min(3, body - 1)] ^= 0x10
    v["flip-op0-body"] = bytes(flip)
    flip = bytearray(pkg)
    flip[40] ^= 1  # signature
    v["flip-signature"] = bytes(flip)
    # The manifest's mode byte: in-place. The signature breaks; the op heads
    # are now read with in-place fields (a source sha256 in copy and patch).
    flip = bytearray(pkg)
    assert m["mode"] == AB, name
    flip[HEADER_LEN + m["mode_at"]] = IN_PLACE
    v["mode-inplace"] = bytes(flip)
    # The op count off by one: flipping bit 0 of the varint's first byte
    # changes the value by one and keeps the varint's length and minimality
    # (from 2 ops on, the manifest's other fields stay where they were).
    assert m["op_count"] >= 2, name
    flip = bytearray(pkg)
    flip[HEADER_LEN + m["op_count_at"]] ^= 1
    flipped = parse_manifest(bytes(flip[HEADER_LEN : HEADER_LEN + manifest_len]), version)
    assert abs(flipped["op_count"] - m["op_count"]) == 1, name
    v["flip-op-count"] = bytes(flip)
    return {"%s-%s" % (name, k): d for k, d in v.items()}


# ----------------------------------------------------------- hand patches

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v == 0:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def zigzag(v):
    return (v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1


def encode_patch(records, diff, extra):
    """records: (copy, extra_len, delta); diff: all diff bytes in order."""
    ctrl = b"".join(varint(c) + varint(e) + varint(zigzag(d)) for c, e, d in records)
    return encode_patch_ctrl(ctrl, diff, extra)


def encode_patch_ctrl(ctrl, diff, extra):
    """The PATCH payload of control bytes `ctrl`, plain diff and literals."""
    zr, vr, vals = bytearray(), bytearray(), bytearray()
    i = 0
    while i < len(diff):
        z = 0
        while i < len(diff) and diff[i] == 0:
            z += 1
            i += 1
        if i == len(diff):
            break
        j = i
        while j < len(diff) and diff[j] != 0:
            j += 1
        zr += varint(z)
        vr += varint(j - i)
        vals += diff[i:j]
        i = j
    streams = [ctrl, bytes(zr), bytes(vr), bytes(vals), extra]
    return b"".join(varint(len(s)) for s in streams) + b"".join(streams)


def hand_patches():
    s = {}
    # Whole segment copied with no diff: every stream but ctrl empty.
    s["copy-exact"] = patch_seed(0, 1, 0, 64, [(0, 64)], encode_patch([(64, 0, 0)], bytes(64), b""))
    # Copy with sparse diffs spanning two records, then literals.
    diff = bytes([0, 0, 5, 7, 0, 0, 0, 1] + [0] * 20 + [9, 9, 9] + [0] * 9)
    s["two-records-sparse"] = patch_seed(
        0, 7, 256, 60, [(0, 512)],
        encode_patch([(24, 8, 0), (16, 12, -200)], diff, b"LITERAL!twelve bytes"),
    )
    # Literal-only segment (record with no copy).
    s["literal-only"] = patch_seed(0, 3, 0, 10, [(0, 1)], encode_patch([(0, 10, 0)], b"", b"0123456789"))
    # Negative delta back to the start, second extent.
    s["two-extents"] = patch_seed(
        0, 200, 1024, 40, [(0, 16), (900, 100)],
        encode_patch([(8, 0, -1024), (32, 0, 900 - 8)], bytes([1] * 40), b""),
    )
    # Diff runs crossing chunk boundaries, with many small runs.
    diff = bytes((i % 3 == 0) * (i % 251 + 1) for i in range(1000))
    s["many-runs"] = patch_seed(0, 0, 0, 1000, [(0, 4096)], encode_patch([(1000, 0, 0)], diff, b""))
    base = s["two-records-sparse"]
    s["misuse-overfeed"] = bytes([base[0] | (1 << 5)]) + base[1:]
    s["misuse-skip"] = bytes([base[0] | (2 << 5)]) + base[1:]
    # Malformed ones, each refused for one reason.
    s["bad-read-outside"] = patch_seed(0, 1, 0, 64, [(0, 32)], encode_patch([(64, 0, 0)], bytes(64), b""))
    s["bad-lengths-over"] = patch_seed(0, 1, 0, 8, [(0, 8)], varint(200) + b"\0\0\0\0" + b"\x08\x00\x00")
    s["bad-nonminimal-varint"] = patch_seed(0, 1, 0, 8, [(0, 8)], b"\x83\x00\0\0\0\0" + b"\x08\x00\x00")
    s["bad-zero-value"] = patch_seed(
        0, 1, 0, 8, [(0, 8)], b"\x03\x01\x01\x02\x00" + b"\x08\x00\x00" + b"\x02" + b"\x02" + b"\x05\x00"
    )
    s["bad-delta-overflow"] = patch_seed(
        0, 1, 2**64 - 4, 8, [(2**64 - 9, 8)], encode_patch([(8, 0, 2**62)], bytes(8), b"")
    )
    s["bad-extent-overflow"] = patch_seed(
        0, 1, 0, 8, [(2**64 - 4, 8), (0, 0)], encode_patch([(8, 0, 0)], bytes(8), b"")
    )
    s["bad-too-long"] = patch_seed(0, 1, 0, 8, [(0, 16)], encode_patch([(16, 0, 0)], bytes(16), b""))
    s["bad-short"] = patch_seed(0, 1, 0, 32, [(0, 16)], encode_patch([(16, 0, 0)], bytes(16), b""))
    s["bad-leftover-values"] = patch_seed(
        0, 1, 0, 8, [(0, 8)], encode_patch([(8, 0, 0)], bytes(8) + b"\x05", b"")
    )
    return s


def tiny_cmd(tag, length, *args):
    """A tiny command header (SPEC.md §5b.1): tag, length, varint args."""
    if length < 32:
        out = bytes([(tag << 5) | (length - 1)])
    else:
        out = bytes([(tag << 5) | 31]) + varint(length - 32)
    return out + b"".join(varint(a) for a in args)


def hand_tiny():
    s = {}
    ex = bytes.fromhex("01aabb812021030560" "00cc420900fe00" "00dd")
    # The worked example of SPEC.md §5b.4.
    s["spec-example"] = patch_seed(0, 5, 0x100, 12, [(0x110, 8)], ex)
    s["spec-repeat"] = patch_seed(0, 9, 0, 8, [], bytes.fromhex("0361626364a303"))
    s["spec-overlap"] = patch_seed(0, 1, 0, 8, [], bytes.fromhex("0061a600"))
    # Long commands with extended lengths, a copy from a second extent and
    # a long overlapping output copy.
    long = (tiny_cmd(0, 40) + bytes(range(40)) + tiny_cmd(4, 100, zigzag(5000))
            + tiny_cmd(5, 300, 0) + tiny_cmd(2, 33, zigzag(-5100)) + bytes(range(1, 34)))
    s["long-commands"] = patch_seed(0, 77, 0, 473, [(0, 40), (4990, 200)], long)
    # Refused, one reason each.
    s["bad-tag6"] = patch_seed(0, 5, 0x100, 12, [(0x110, 8)], ex[:3] + b"\xc1" + ex[4:])
    s["bad-outside"] = patch_seed(0, 5, 0x100, 12, [(0x110, 4)], ex)
    s["bad-trailing"] = patch_seed(0, 5, 0x100, 12, [(0x110, 8)], ex + b"\0")
    s["bad-short"] = patch_seed(0, 5, 0x100, 12, [(0x110, 8)], ex[:-1])
    s["bad-past-segment"] = patch_seed(0, 5, 0x100, 11, [(0x110, 8)], ex)
    s["bad-nonminimal"] = patch_seed(0, 5, 0x100, 12, [(0x110, 8)], ex[:4] + b"\xa0\x00" + ex[5:])
    s["bad-back-too-far"] = patch_seed(0, 3, 0, 8, [], bytes.fromhex("0061a601"))
    s["bad-new-reads-source"] = patch_seed(0, 5, 0x100, 12, [], ex)
    return s


def hand_lzma(real):
    """LZMA payloads (SPEC.md §5e) behind the 8-byte prefix of the
    `lzma_payload` target (decoded_len, dst_len): good ones with stored
    streams and bad tables and streams (hand-*), and mutants of `real`, a
    good seed, whose verdict is not fixed (mut-*)."""
    s = {}
    lens = lambda d, dst: struct.pack("<II", d, dst)
    stored = bytes([0, 2, 0xFF, 3, 3, 0xFF, 2, 2]) + b"abcde"
    s["stored-two"] = lens(5, 5) + stored
    # A patch layout, all stored: 1 record (diff 4, extra 1, seek 0), a
    # plain diff with one value, one literal byte.
    ctrl, diff, extra = bytes([4, 1, 0]), bytes([0, 0, 7, 0]), b"x"
    body = bytes([1, 3, 0xFF, 3, 3, 0xFF, 4, 4, 0xFF, 1, 1]) + ctrl + diff + extra
    s["stored-patch"] = lens(len(encode_patch([(4, 1, 0)], diff, extra)), 5) + body
    # The same patch with a gapped diff (layout 3): a gap of 2 zeros, then
    # the value; the trailing zero is implicit. No dictionary window.
    gaps, kept = bytes([0, 2]), bytes([7])
    body = bytes([3, 4, 0xFF, 3, 3, 0xFF, 2, 2, 0xFF, 1, 1, 0xFF, 1, 1, 0, 0]) + ctrl + gaps + kept + extra
    s["stored-gaps"] = lens(len(encode_patch([(4, 1, 0)], diff, extra)), 5) + body
    # A gap list that takes 2 bytes of a 1-byte gapped diff.
    s["bad-gaps"] = lens(len(encode_patch([(4, 1, 0)], diff, extra)), 5) + body.replace(ctrl + gaps, ctrl + bytes([2, 2]))
    s["bad-layout"] = lens(5, 5) + bytes([2]) + stored[1:]
    s["bad-count"] = lens(5, 5) + bytes([1, 2]) + stored[2:]
    s["bad-props-lc8"] = lens(5, 5) + bytes([0, 1, 8, 5, 5]) + b"abcde"
    s["bad-props-225"] = lens(5, 5) + bytes([0, 1, 225, 5, 5]) + b"abcde"
    s["bad-stored-lengths"] = lens(5, 5) + bytes([0, 1, 0xFF, 5, 4]) + b"abcd"
    s["bad-too-long"] = lens(4, 4) + stored
    s["bad-short-payload"] = lens(5, 5) + stored[:-1]
    s["bad-varint"] = lens(5, 5) + bytes([0, 1, 0xFF, 0x85, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
    s["bad-truncated-table"] = lens(5, 5) + bytes([0, 2, 0xFF, 3])
    s["bad-real-truncated"] = real[:-1]
    flipped = bytearray(real)
    flipped[-1] ^= 0x55
    s["bad-real-wrong-length"] = lens(struct.unpack_from("<I", real)[0] + 1, struct.unpack_from("<I", real, 4)[0]) + real[8:]
    return s, {"real-flipped-tail": bytes(flipped)}


def make_tiny_seeds(tmp, key):
    for name in os.listdir(PKG_DIR):
        if name.endswith("-tiny"):
            os.remove(os.path.join(PKG_DIR, name))
    clean(TINY_DIR)
    pkgs = make_tiny_packages(tmp, key)
    streams = {}
    for name, pkg in sorted(pkgs.items()):
        write(PKG_DIR, "pkg-%s" % name, pkg)
        for op in ops(pkg):
            if op.codec != TINY:
                continue
            i, payload = op.index, op.payload
            seed = patch_seed(0, i * 37 % 256, op.dst_off, op.dst_len, op.extents, payload)
            label = "patch" if op.kind == PATCH else "new"
            streams.setdefault(hashlib.sha1(payload).hexdigest(), ("%s-op%d-%s" % (name, i, label), seed))
    by_size = sorted(streams.values(), key=lambda p: (len(p[1]), p[0]))
    picked = [p for p in by_size if p[0].endswith("-patch")][:8] + [p for p in by_size if p[0].endswith("-new")][:3]
    for name, data in picked:
        write(TINY_DIR, "from-" + name, data)
    for name, data in hand_tiny().items():
        write(TINY_DIR, "hand-" + name, data)


def report():
    total = 0
    for d in (PKG_DIR, PATCH_DIR, TINY_DIR, LZMA_DIR):
        files = os.listdir(d)
        size = sum(os.path.getsize(os.path.join(d, f)) for f in files)
        total += size
        print("%s: %d files, %d bytes" % (os.path.relpath(d, ROOT), len(files), size))
    print("total %d bytes" % total)


def main():
    if TINY_ONLY:
        with tempfile.TemporaryDirectory() as tmp:
            key = os.path.join(tmp, "fuzz.key")
            pem_key(key)
            make_tiny_seeds(tmp, key)
        report()
        return
    clean(PKG_DIR)
    clean(PATCH_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "fuzz.key")
        pem_key(key)
        pkgs = make_packages(tmp, key)
        make_tiny_seeds(tmp, key)
    patch_payloads = {}
    lzma_payloads = {}
    for name, pkg in sorted(pkgs.items()):
        write(PKG_DIR, "pkg-%s" % name, pkg)
        for op in ops(pkg):
            i, kind, codec, payload = op.index, op.kind, op.codec, op.payload
            if kind in (PATCH, NEW) and codec == LZMA:
                seed = struct.pack("<II", op.decoded_len, op.dst_len) + payload
                label = "patch" if kind == PATCH else "new"
                lzma_payloads.setdefault(hashlib.sha1(seed).hexdigest(), ("%s-op%d-%s" % (name, i, label), seed))
            if kind != PATCH:
                continue
            # Layout 2 codes literals after the op's source (a preset
            # dictionary), which Python's lzma cannot take.
            if codec == LZMA and payload[0] == 2:
                continue
            decoded = decode_payload(codec, payload)
            seed = patch_seed(0, i * 37 % 256, op.dst_off, op.dst_len, op.extents, decoded)
            h = hashlib.sha1(decoded).hexdigest()
            codec_name = {STORED: "stored", ZSTD: "zstd", LZMA: "lzma"}[codec]
            patch_payloads.setdefault(h, ("%s-op%d-%s" % (name, i, codec_name), seed))
    for name in ("edits-s256-l1", "moved-block-s1024-l19", "code-shift-s256-l19"):
        for vname, data in variants(name, pkgs[name]).items():
            write(PKG_DIR, "mut-" + vname, data)
    # The smallest few of each codec, to keep the corpus small.
    by_size = sorted(patch_payloads.values(), key=lambda p: (len(p[1]), p[0]))
    stored = [p for p in by_size if p[0].endswith("-stored")][:8]
    coded = [p for p in by_size if p[0].endswith(("-zstd", "-lzma"))][:8]
    for name, data in stored + coded:
        write(PATCH_DIR, "from-" + name, data)
    for name, data in hand_patches().items():
        write(PATCH_DIR, "hand-" + name, data)
    clean(LZMA_DIR)
    by_size = sorted(lzma_payloads.values(), key=lambda p: (len(p[1]), p[0]))
    picked = [p for p in by_size if p[0].endswith("-patch")][:8] + [p for p in by_size if p[0].endswith("-new")][:3]
    for name, data in picked:
        write(LZMA_DIR, "from-" + name, data)
    hand, mutated = hand_lzma(picked[0][1])
    for name, data in hand.items():
        write(LZMA_DIR, "hand-" + name, data)
    for name, data in mutated.items():
        write(LZMA_DIR, "mut-" + name, data)
    report()


if __name__ == "__main__":
    main()
