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

HEADER_LEN, MANIFEST_LEN, OP_HEADER_LEN, EXTENT_LEN = 96, 272, 128, 16
PATCH, NEW, STORED, ZSTD, TINY, LZMA = 2, 3, 0, 1, 2, 3

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

def ops(pkg):
    pos = HEADER_LEN + MANIFEST_LEN
    while pos < len(pkg):
        kind, codec, _fill, _r, n_ext, _r2, plen, dlen, dst_off, dst_len = struct.unpack_from(
            "<BBBBHHIIQI", pkg, pos
        )
        ext_at = pos + OP_HEADER_LEN
        extents = [struct.unpack_from("<QQ", pkg, ext_at + i * EXTENT_LEN) for i in range(n_ext)]
        pay_at = ext_at + n_ext * EXTENT_LEN
        yield pos, kind, codec, dst_off, dst_len, extents, pkg[pay_at : pay_at + plen], dlen
        pos = pay_at + plen


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


def read_varint(data, pos):
    v, shift = 0, 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, pos


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
    """Hand-made mutants of a real package."""
    v = {}
    v["trunc-header"] = pkg[:50]
    v["trunc-manifest"] = pkg[:HEADER_LEN + 100]
    v["trunc-ops"] = pkg[: len(pkg) - 7]
    v["trailing-byte"] = pkg + b"\0"
    flip = bytearray(pkg)
    flip[HEADER_LEN + MANIFEST_LEN + OP_HEADER_LEN + 3] ^= 0x10  # an extent or payload byte
    v["flip-op0-body"] = bytes(flip)
    flip = bytearray(pkg)
    flip[40] ^= 1  # signature
    v["flip-signature"] = bytes(flip)
    flip = bytearray(pkg)
    flip[HEADER_LEN + 104] = 1  # manifest mode: in-place (signature breaks, chain holds)
    v["mode-inplace"] = bytes(flip)
    flip = bytearray(pkg)
    flip[HEADER_LEN + 192] ^= 1  # op count off by one
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
        for i, (_pos, kind, codec, dst_off, dst_len, extents, payload, _dlen) in enumerate(ops(pkg)):
            if codec != TINY:
                continue
            seed = patch_seed(0, i * 37 % 256, dst_off, dst_len, extents, payload)
            label = "patch" if kind == PATCH else "new"
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
        for i, (_pos, kind, codec, dst_off, dst_len, extents, payload, _dlen) in enumerate(ops(pkg)):
            if kind in (PATCH, NEW) and codec == LZMA:
                seed = struct.pack("<II", _dlen, dst_len) + payload
                label = "patch" if kind == PATCH else "new"
                lzma_payloads.setdefault(hashlib.sha1(seed).hexdigest(), ("%s-op%d-%s" % (name, i, label), seed))
            if kind != PATCH:
                continue
            decoded = decode_payload(codec, payload)
            seed = patch_seed(0, i * 37 % 256, dst_off, dst_len, extents, decoded)
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
