#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test (unit, reference and
# multi-process; the multi-host tests too when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
