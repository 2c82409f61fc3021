#!/usr/bin/env bash
# Trains the demo curriculum and its ablations on the synthetic concept world (a simulation) and
# prints the README's comparison table. Same seeds every time, so the figures are reproducible.
#   Scripts/ablations.sh            # ~1 minute on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
Scripts/setup.sh
swift build -c release --product proclip >&2
for c in demo llm2clip no-self-distill; do
    echo "training $c ..." >&2
    .build/release/proclip train --config "Configs/$c.yaml" --run-dir "runs/ablations/$c" --overwrite --quiet >/dev/null
done
.build/release/proclip report runs/ablations/demo=ProCLIP "runs/ablations/llm2clip=llm2clip (contrast only)" \
    runs/ablations/no-self-distill=no-self-distill --variants long_en,short_en,noisy_en,long_de,long_zh
