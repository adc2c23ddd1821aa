#!/usr/bin/env bash
# Wheels the lent GPU machine lacks, downloaded here into .whl/ (ignored by git), for tools/gpu_check.sh.
#
#   bash tools/gpu_wheels.sh          (here, before the device call; then carry .whl there)
#
# That machine's image (Python 3.12, torch, timm, scikit-image, opencv, transformers, ...) lacks
# open_clip (stage 1's CLIP image encoder) with its ftfy and wcwidth, imageio-ffmpeg (the mp4 previews;
# 0.6.0, as 0.8's 68 MB wheel alone would pass the 64 MiB a call carries) and gsplat (its pure-Python
# wheel: gpu_check.sh builds its CUDA kernels there, in the background). Together: 37 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl open_clip_torch ftfy wcwidth imageio-ffmpeg==0.6.0 gsplat==1.5.3
ls -l .whl
du -sh .whl
