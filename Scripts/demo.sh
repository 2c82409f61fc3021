#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release, and runs the
# whole ProCLIP curriculum of Configs/demo.yaml on the synthetic concept world (a simulation),
# printing the eval table at the end. Extra arguments go to `proclip train`.
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product proclip
.build/release/proclip train --config Configs/demo.yaml --overwrite "$@"
