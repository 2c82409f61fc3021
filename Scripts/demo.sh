#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release, and runs
# one training step benchmark on synthetic inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product proclip
.build/release/proclip bench step "$@"
