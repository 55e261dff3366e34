#!/usr/bin/env bash
# Build the fota MCU firmware-pair corpus (Cortex-M4, arm-none-eabi-gcc).
#
#   ./build.sh OUTDIR [PAIR_NAME...]    build all pairs, or only the named ones
#   ./build.sh --list                   print the pair names
#
# Output: OUTDIR/<pair>/{old,new}.{elf,bin} and OUTDIR/pairs.tsv (rows for
# the pairs built in this run).  Library sources come from the crates.io
# crates that bundle them, fetched with cargo into the normal cargo cache.
# Nothing is installed; see README.md.
set -euo pipefail

export LC_ALL=C LANG=C TZ=UTC
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1704067200}
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# pair-name  old-firmware  new-firmware ; firmware = lib:version:APP_VERSION:opt
PAIRS=(
  "lua-5.4.7-app1-app2      lua:5.4.7:1:Os     lua:5.4.7:2:Os"
  "lua-5.4.6-5.4.7          lua:5.4.6:1:Os     lua:5.4.7:1:Os"
  "lua-5.3.6-5.4.6          lua:5.3.6:1:Os     lua:5.4.6:1:Os"
  "lua-5.4.7-Os-O2          lua:5.4.7:1:Os     lua:5.4.7:1:O2"
  "zlib-1.3-app1-app2       zlib:1.3:1:Os      zlib:1.3:2:Os"
  "zlib-1.2.13-1.3          zlib:1.2.13:1:Os   zlib:1.3:1:Os"
  "zlib-1.2.11-1.3.1        zlib:1.2.11:1:Os   zlib:1.3.1:1:Os"
  "sqlite-3.45.0-app1-app2  sqlite:3.45.0:1:Os sqlite:3.45.0:2:Os"
  "sqlite-3.44.0-3.45.0     sqlite:3.44.0:1:Os sqlite:3.45.0:1:Os"
  "sqlite-3.39.2-3.45.0     sqlite:3.39.2:1:Os sqlite:3.45.0:1:Os"
)

# lib:version -> crate version subdir
crate_of() {
  case "$1" in
    lua:5.3.6)     echo "lua-src 546.0.2 lua-5.3.6" ;;
    lua:5.4.6)     echo "lua-src 546.0.2 lua-5.4.6" ;;
    lua:5.4.7)     echo "lua-src 547.0.0 lua-5.4.7" ;;
    zlib:1.2.11)   echo "libz-sys 1.1.3 src/zlib" ;;
    zlib:1.2.13)   echo "libz-sys 1.1.9 src/zlib" ;;
    zlib:1.3)      echo "libz-sys 1.1.14 src/zlib" ;;
    zlib:1.3.1)    echo "libz-sys 1.1.20 src/zlib" ;;
    sqlite:3.39.2) echo "libsqlite3-sys 0.25.2 sqlite3" ;;
    sqlite:3.44.0) echo "libsqlite3-sys 0.27.0 sqlite3" ;;
    sqlite:3.45.0) echo "libsqlite3-sys 0.28.0 sqlite3" ;;
    *) echo "unknown library $1" >&2; return 1 ;;
  esac
}

LUA_SRCS="lapi lauxlib lbaselib lcode lcorolib lctype ldebug ldo ldump lfunc lgc llex
  lmathlib lmem lobject lopcodes lparser lstate lstring lstrlib ltable ltablib ltm
  lundump lutf8lib lvm lzio"
ZLIB_SRCS="adler32 compress crc32 deflate infback inffast inflate inftrees trees uncompr zutil"
SQLITE_SRCS="sqlite3"

CPU_FLAGS="-mcpu=cortex-m4 -mthumb"
LUA_DEFS="-std=gnu99 -DNDEBUG"
ZLIB_DEFS="-DNDEBUG"
SQLITE_DEFS="-DNDEBUG -DSQLITE_OS_OTHER=1 -DSQLITE_THREADSAFE=0 \
  -DSQLITE_ENABLE_MEMSYS5 -DSQLITE_ZERO_MALLOC -DSQLITE_DEFAULT_MEMSTATUS=0 \
  -DSQLITE_TEMP_STORE=3 -DSQLITE_MAX_MMAP_SIZE=0 -DSQLITE_DEFAULT_PAGE_SIZE=1024 \
  -DSQLITE_DEFAULT_CACHE_SIZE=-32 -DSQLITE_DQS=0 -DSQLITE_OMIT_LOAD_EXTENSION \
  -DSQLITE_OMIT_WAL -DSQLITE_OMIT_SHARED_CACHE -DSQLITE_OMIT_LOCALTIME \
  -DSQLITE_OMIT_DEPRECATED -DSQLITE_OMIT_PROGRESS_CALLBACK \
  -DSQLITE_OMIT_COMPILEOPTION_DIAGS"

usage() {
  echo "usage: $0 OUTDIR [PAIR_NAME...]" >&2
  echo "       $0 --list" >&2
  exit 1
}

[ $# -ge 1 ] || usage
if [ "$1" = "--list" ]; then
  for p in "${PAIRS[@]}"; do set -- $p; echo "$1"; done
  exit 0
fi
case "$1" in -*) usage ;; esac

missing=""
for t in arm-none-eabi-gcc arm-none-eabi-objcopy arm-none-eabi-strip; do
  command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
  echo "error: missing toolchain:$missing" >&2
  echo "install it with:" >&2
  echo "  apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi binutils-arm-none-eabi" >&2
  exit 2
fi
if ! echo 'int x;' | arm-none-eabi-gcc $CPU_FLAGS --specs=nano.specs -x c -c -o /dev/null - 2>/dev/null; then
  echo "error: newlib-nano not found; install it with:" >&2
  echo "  apt-get install libnewlib-arm-none-eabi" >&2
  exit 2
fi
command -v cargo >/dev/null 2>&1 || { echo "error: cargo is needed to fetch the crates" >&2; exit 2; }
command -v sha256sum >/dev/null 2>&1 || { echo "error: sha256sum missing" >&2; exit 2; }

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
shift

# Select pairs
SELECTED=()
if [ $# -eq 0 ]; then
  SELECTED=("${PAIRS[@]}")
else
  for want in "$@"; do
    found=""
    for p in "${PAIRS[@]}"; do
      set -- $p
      if [ "$1" = "$want" ]; then SELECTED+=("$p"); found=1; fi
    done
    [ -n "$found" ] || { echo "error: unknown pair '$want' (see --list)" >&2; exit 1; }
  done
fi

WORK=$(mktemp -d -t fota-mcu.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
mkdir -p "$WORK/src" "$WORK/obj" "$WORK/fw" "$WORK/app" "$WORK/cargo"
cp "$HERE"/startup.c "$HERE"/cortex-m4.ld "$HERE"/app_lua.c "$HERE"/app_zlib.c \
   "$HERE"/app_sqlite.c "$HERE"/os_sqlite.c "$WORK/app/"

# Common compiler flags.  -g0 + prefix map keep paths out of the objects;
# all compiles run inside $WORK with relative file names.
cflags() { # opt
  echo "$CPU_FLAGS -$1 -g0 -ffunction-sections -fdata-sections -fno-common -ffile-prefix-map=$WORK/=./ -ffile-prefix-map=$WORK=."
}

# ---- parallel job helper -------------------------------------------------
PIDS=()
run_job() {
  if [ ${#PIDS[@]} -ge "$JOBS" ]; then
    wait "${PIDS[0]}"
    PIDS=("${PIDS[@]:1}")
  fi
  "$@" &
  PIDS+=($!)
}
wait_jobs() {
  local p
  for p in "${PIDS[@]}"; do wait "$p"; done
  PIDS=()
}

# ---- crate fetching ------------------------------------------------------
# fetch_crate CRATE VERSION -> prints the unpacked crate directory
fetch_crate() {
  local crate=$1 ver=$2 proj="$WORK/cargo/fetch_$1_$2" meta dir
  mkdir -p "$proj/src"
  echo 'fn main() {}' > "$proj/src/main.rs"
  printf '[package]\nname = "fetch-%s"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n%s = { version = "=%s", default-features = false }\n' \
    "$crate" "$crate" "$ver" > "$proj/Cargo.toml"
  (cd "$proj" && cargo fetch -q >&2)
  meta=$(cd "$proj" && cargo metadata -q --format-version 1)
  dir=$(printf '%s' "$meta" | grep -o "\"manifest_path\":\"[^\"]*/$crate-$ver/Cargo.toml\"" | head -n1 \
        | sed -e 's/^"manifest_path":"//' -e 's#/Cargo.toml"$##')
  [ -n "$dir" ] && [ -d "$dir" ] || { echo "error: could not locate $crate $ver" >&2; return 1; }
  echo "$dir"
}

# prepare_lib lib:ver -> copies the library sources to $WORK/src/<lib>-<ver>
declare -A CRATE_DIRS=()
prepare_lib() {
  local lv=$1 crate ver sub key dst dir want got
  dst="$WORK/src/${lv/:/-}"
  [ -d "$dst" ] && return 0
  read -r crate ver sub < <(crate_of "$lv")
  key="$crate-$ver"
  if [ -z "${CRATE_DIRS[$key]:-}" ]; then
    echo "fetch $crate $ver" >&2
    CRATE_DIRS[$key]=$(fetch_crate "$crate" "$ver")
  fi
  dir="${CRATE_DIRS[$key]}/$sub"
  mkdir -p "$dst"
  cp -R "$dir"/. "$dst"/
  want=${lv#*:}
  case "$lv" in
    lua:*)    got=$(sed -n 's/^#define LUA_VERSION_\(MAJOR\|MINOR\|RELEASE\)[[:space:]]*"\([0-9]*\)".*/\2/p' "$dst/lua.h" | paste -sd. -) ;;
    zlib:*)   got=$(sed -n 's/^#define ZLIB_VERSION "\([^"]*\)".*/\1/p' "$dst/zlib.h") ;;
    sqlite:*) got=$(sed -n 's/^#define SQLITE_VERSION  *"\([^"]*\)".*/\1/p' "$dst/sqlite3.h") ;;
  esac
  if [ "$got" != "$want" ]; then
    echo "error: $crate $ver/$sub bundles version '$got', expected '$want'" >&2
    return 1
  fi
}

lib_srcs() {
  case "$1" in lua) echo $LUA_SRCS ;; zlib) echo $ZLIB_SRCS ;; sqlite) echo $SQLITE_SRCS ;; esac
}
lib_defs() {
  case "$1" in lua) echo "$LUA_DEFS" ;; zlib) echo "$ZLIB_DEFS" ;; sqlite) echo "$SQLITE_DEFS" ;; esac
}

compile_one() { # srcdir-rel src.c out.o flags...
  local dir=$1 src=$2 out=$3
  shift 3
  (cd "$WORK/$dir" && arm-none-eabi-gcc "$@" -c "$src" -o "$out")
}

# queue_lib_objects lib ver opt: compile the library once per (version, opt)
declare -A LIB_DONE=()
queue_lib_objects() {
  local lib=$1 ver=$2 opt=$3 id="$1-$2-$3" f
  [ -n "${LIB_DONE[$id]:-}" ] && return 0
  LIB_DONE[$id]=1
  mkdir -p "$WORK/obj/$id"
  for f in $(lib_srcs "$lib"); do
    run_job compile_one "src/$lib-$ver" "$f.c" "$WORK/obj/$id/$f.o" \
      $(cflags "$opt") -w $(lib_defs "$lib") -I.
  done
}

queue_app_objects() { # lib ver app opt
  local lib=$1 ver=$2 app=$3 opt=$4 id="$1-$2-app$3-$4" f
  [ -n "${LIB_DONE[$id]:-}" ] && return 0
  LIB_DONE[$id]=1
  mkdir -p "$WORK/obj/$id"
  for f in startup "app_$lib" $([ "$lib" = sqlite ] && echo os_sqlite); do
    run_job compile_one app "$f.c" "$WORK/obj/$id/$f.o" \
      $(cflags "$opt") -Wall -Wextra -Wno-unused-parameter $(lib_defs "$lib") \
      -DAPP_VERSION="$app" -I"../src/$lib-$ver"
  done
}

link_fw() { # lib ver app opt
  local lib=$1 ver=$2 app=$3 opt=$4 fw="$1-$2-app$3-$4" objs=() f extra=""
  [ -f "$WORK/fw/$fw.bin" ] && return 0
  for f in startup "app_$lib" $([ "$lib" = sqlite ] && echo os_sqlite); do
    objs+=("obj/$fw/$f.o")
  done
  for f in $(lib_srcs "$lib"); do objs+=("obj/$lib-$ver-$opt/$f.o"); done
  # Lua formats floats with snprintf: keep newlib-nano's float printf.
  [ "$lib" = lua ] && extra="-u _printf_float"
  (cd "$WORK" && arm-none-eabi-gcc $CPU_FLAGS -"$opt" --specs=nano.specs -nostartfiles \
      -T app/cortex-m4.ld -Wl,--gc-sections -Wl,--build-id=none -Wl,--no-warn-rwx-segments \
      $extra -o "fw/$fw.elf" "${objs[@]}" -lm)
  arm-none-eabi-strip --strip-debug "$WORK/fw/$fw.elf"
  arm-none-eabi-objcopy -O binary "$WORK/fw/$fw.elf" "$WORK/fw/$fw.bin"
  echo "link $fw: $(stat -c %s "$WORK/fw/$fw.bin") bytes" >&2
}

# ---- plan ----------------------------------------------------------------
FWS=()
for p in "${SELECTED[@]}"; do
  set -- $p
  FWS+=("$2" "$3")
done
FWS=($(printf '%s\n' "${FWS[@]}" | sort -u))

for fw in "${FWS[@]}"; do
  IFS=: read -r lib ver app opt <<< "$fw"
  prepare_lib "$lib:$ver"
done
for fw in "${FWS[@]}"; do
  IFS=: read -r lib ver app opt <<< "$fw"
  queue_lib_objects "$lib" "$ver" "$opt"
  queue_app_objects "$lib" "$ver" "$app" "$opt"
done
wait_jobs
for fw in "${FWS[@]}"; do
  IFS=: read -r lib ver app opt <<< "$fw"
  link_fw "$lib" "$ver" "$app" "$opt"
done

# ---- outputs -------------------------------------------------------------
TSV="$OUT/pairs.tsv"
printf 'name\tcategory\tarch\told_sha256\tnew_sha256\told_bytes\tnew_bytes\tsource\n' > "$TSV"
for p in "${SELECTED[@]}"; do
  set -- $p
  name=$1
  old=$(echo "$2" | awk -F: '{print $1"-"$2"-app"$3"-"$4}')
  new=$(echo "$3" | awk -F: '{print $1"-"$2"-app"$3"-"$4}')
  mkdir -p "$OUT/$name"
  for form in elf bin; do
    cp "$WORK/fw/$old.$form" "$OUT/$name/old.$form"
    cp "$WORK/fw/$new.$form" "$OUT/$name/new.$form"
    chmod 0644 "$OUT/$name/old.$form" "$OUT/$name/new.$form"
  done
  for form in elf bin; do
    if [ $form = elf ]; then arch=arm; else arch=thumb; fi
    printf '%s\tmcu-%s\t%s\t%s\t%s\t%s\t%s\tmcu:%s:%s\n' "$name-$form" "$form" "$arch" \
      "$(sha256sum < "$OUT/$name/old.$form" | cut -d' ' -f1)" \
      "$(sha256sum < "$OUT/$name/new.$form" | cut -d' ' -f1)" \
      "$(stat -c %s "$OUT/$name/old.$form")" "$(stat -c %s "$OUT/$name/new.$form")" \
      "$name" "$form" >> "$TSV"
  done
done
echo "wrote ${#SELECTED[@]} pair(s) to $OUT (index: $TSV)" >&2
