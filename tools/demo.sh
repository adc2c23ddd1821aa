#!/usr/bin/env bash
# The demo (make demo): the whole chain on a synthetic video made on the spot, with the tiny model
# and seeded random weights, on the CPU. It shows every stage's outputs; the images are noise
# because the weights are untrained. Real results need the checkpoints in ckpt/ (ckpt/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m tools.synthetic data/demo --frames 8 --size 256 --seed 0
CFG=configs/tiny.yaml CKPT=random RIFE_MODEL=random CROP_SIZE=50 SAMPLE_STEPS=10 \
    bash run.sh demo demo cpu 8 0
cat <<'MSG'

Demo finished. Outputs:
  input video (synthetic)   data/demo/
  generated 16-view frames  output/demo/{0..7}.png
  interpolated frames       output/demo/interp/
  data frames + confidence  output/demo/data/, output/demo/data/conf_map/
  previews                  output/demo/preview/ (view_XX.mp4, view360.mp4, contact_sheet.png)
  4DGS dataset              recon_data/demo/

Stage 6 (4D Gaussians) is off in the demo: on a CPU it takes minutes. Run it with
  python reconstruct.py --data recon_data/demo --output recon_out/demo --iterations 100 --num_points 2000
or add RECON=1 to run.sh on a GPU.

NOTE: these images come from an UNTRAINED model (tiny config, random weights): they are noise
that proves the pipeline runs. Real results need the checkpoints: see ckpt/README.md.
MSG
