#!/usr/bin/env bash
# Installs the peer delta tools that `compare` (fota-benches) runs fota against:
#   Debian: bsdiff, xdelta3, zstd, time (GNU time, for peak RSS), python3-venv
#   Python venv (default target/peers-venv, override with PEERS_VENV): detools, hdiffpatch
# Idempotent: re-running only installs what is missing. Prints the versions.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PEERS_VENV:-$root/target/peers-venv}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

need=()
for pkg in bsdiff xdelta3 zstd time python3-venv; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
fi

python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
    echo "creating Python venv $venv"
    "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import detools, hdiffpatch' 2>/dev/null; then
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q detools hdiffpatch
fi

echo "--- peer tool versions"
echo "bsdiff     $(dpkg-query -W -f='${Version}' bsdiff)"
echo "xdelta3    $(xdelta3 -V 2>&1 | head -n1)"
echo "zstd       $(zstd --version)"
echo "GNU time   $(dpkg-query -W -f='${Version}' time)"
echo "detools    $("$venv/bin/detools" --version)"
echo "hdiffpatch $("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("hdiffpatch"))')"
echo "venv       $venv"
