#!/usr/bin/env bash
# The demo: the chain on a synthetic video made on the spot, tiny model, random weights, CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m tools.synthetic data/demo --frames 8 --size 256 --seed 0
echo "demo input: data/demo (8 synthetic RGBA frames)"
