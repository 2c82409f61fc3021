#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds in release, and runs the
# whole ProCLIP curriculum of Configs/demo.yaml on the synthetic concept world (a simulation) with
# a local coordinator and two workers, printing the eval table at the end.
# Extra arguments go to `proclip launch` (e.g. --workers 4, --max-steps 50).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product proclip
exec .build/release/proclip launch --config Configs/demo.yaml --workers 2 --overwrite "$@"
