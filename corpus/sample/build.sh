#!/usr/bin/env bash
# build.sh OUTDIR - build the bundled sample firmware pair.
#
# Compiles v1/ into OUTDIR/old and v2/ into OUTDIR/new with the host C
# compiler (${CC:-cc}).  The build is deterministic: each version is
# compiled from inside its own directory with relative paths, without
# debug info, compiler ident or build-id, so repeated builds with the same
# toolchain are byte-identical and no absolute path lands in the images.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi

export LC_ALL=C
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
out=$(cd "$1" && pwd)
# CC may carry a wrapper ("ccache gcc"), so it is split on purpose.
cc=${CC:-cc}

# Fixed source order: link order decides the code layout.
srcs=(main.c cmd.c config.c fsm.c sensor.c crc.c ringbuf.c log.c)

build() {
    local ver=$1 name=$2
    (
        cd "$here/$ver"
        # shellcheck disable=SC2086
        $cc -std=c11 -O2 -g0 -fno-ident \
            -ffile-prefix-map="$PWD"=. \
            -Wall -Wextra -Werror \
            -Wl,--build-id=none \
            -o "$out/$name" "${srcs[@]}"
    )
    printf '%-4s %6d bytes  %s\n' "$name" "$(wc -c < "$out/$name")" "$out/$name"
}

build v1 old
build v2 new
