#!/usr/bin/env python3
"""Minimal command line for the `hdiffpatch` Python package (HDiffPatch).

    hdiffpatch_cli.py diff OLD NEW PATCH    # lzma level 9, 64 MiB window at most
    hdiffpatch_cli.py apply OLD PATCH OUT

Used by the fota-benches `compare` binary; run it with the peers venv's python.
"""
import sys

import hdiffpatch


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    if len(argv) != 5 or argv[1] not in ("diff", "apply"):
        sys.stderr.write(__doc__)
        return 2
    if argv[1] == "diff":
        old, new = read(argv[2]), read(argv[3])
        window = 16
        while (1 << window) < len(new) and window < 26:
            window += 1
        config = hdiffpatch.LzmaConfig(level=9, window=window)
        # validate=False: the comparison applies and checks every patch itself.
        write(argv[4], hdiffpatch.diff(old, new, config, validate=False))
    else:
        write(argv[4], hdiffpatch.apply(read(argv[2]), read(argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
