#!/usr/bin/env bash
# demo.sh - the main job end to end on the bundled sample pair:
# build fota and the sample firmware, make a key, diff, inspect, apply,
# verify, and print the sizes. Set KEEP=1 to keep the work folder.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

echo "== building fota (release)"
cargo build --release --quiet -p fota --manifest-path "$root/Cargo.toml"
fota="$root/target/release/fota"

work=$(mktemp -d)
if [ "${KEEP:-}" = 1 ]; then
    echo "(work folder kept: $work)"
else
    trap 'rm -rf "$work"' EXIT
fi
cd "$work"

echo "== building the sample firmware pair (sensord 1.4.2 -> 1.5.0)"
bash "$here/build.sh" .

echo "== fota keygen keys"
"$fota" keygen keys

echo "== fota diff"
"$fota" diff --key keys/fota.key --device-class sn-200 --from-version 1.4.2 --to-version 1.5.0 \
    --security-counter 2 old new -o update.fota

echo "== fota inspect"
"$fota" inspect update.fota

echo "== fota apply"
"$fota" apply --pubkey keys/fota.pub --device-class sn-200 --security-counter 2 old update.fota -o applied

echo "== fota verify --source old"
"$fota" verify --pubkey keys/fota.pub --source old update.fota
cmp applied new
echo "applied image is byte-identical to the new image"

old=$(wc -c < old)
new=$(wc -c < new)
pkg=$(wc -c < update.fota)
echo "== sizes"
printf '%-28s %8d bytes\n' "old image" "$old" "new image" "$new" "fota package" "$pkg"
if command -v zstd > /dev/null; then
    printf '%-28s %8d bytes\n' "new image, zstd -19 (no delta)" "$(zstd -19 -q -c new | wc -c)"
fi
if command -v bsdiff > /dev/null; then
    bsdiff old new bsdiff.patch
    printf '%-28s %8d bytes\n' "bsdiff patch (peer)" "$(wc -c < bsdiff.patch)"
fi
awk -v p="$pkg" -v n="$new" 'BEGIN { printf "package / new image: %.4f (%.2f%%)\n", p / n, 100 * p / n }'
