#!/usr/bin/env bash
# Installs what proclip needs on a Debian machine when it is missing: the C libraries (ZeroMQ,
# OpenBLAS, LZ4, with their -dev headers), the lz4 command and iproute2, plus NumPy for the
# reference checks and the safetensors package for the checkpoint interop test. Safe to run
# again; installs nothing that is already present.
set -euo pipefail

need_apt=()
for pkg in libzmq3-dev libopenblas-dev liblz4-dev lz4 iproute2 iputils-ping pkg-config; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    echo "setup: installing ${need_apt[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${PROCLIP_SETUP_PYTHON:-1}" = 1 ] && ! python3 -c "import numpy" 2>/dev/null; then
    echo "setup: installing numpy" >&2
    python3 -m pip install -q numpy
fi
if [ "${PROCLIP_SETUP_PYTHON:-1}" = 1 ] && ! python3 -c "import safetensors.numpy" 2>/dev/null; then
    echo "setup: installing safetensors (checkpoint interop tests)" >&2
    python3 -m pip install -q safetensors
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (install Swift 6 from swift.org)" >&2; exit 1; }
