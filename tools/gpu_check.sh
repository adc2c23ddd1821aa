#!/usr/bin/env bash
# Stage 1 and the chain on a lent GPU (H100/H200) in at most 10 minutes: the GPU rows first, then checks of the CUDA paths.
#
#   bash tools/gpu_check.sh          (from the repo root, on the GPU machine; results in $OUT)
#
# 1. full model, 16 frames x 16 views, decomposed guidance, fp16, (4|16 frames) x (16|4 views) per UNet call
#    (the first row is generate.py's default): s/step, projected 50-step time, peak memory, TFLOP/s and
#    the ratio to the compute floor, the volume / frustum / UNet split, plain vs fast (first row's
#    settings), the top kernels of one step, whether every SDPA call is fused;
# 2. the whole run.sh chain with reconstruction (full model, 16 frames, 50 steps, 3000 iterations with
#    gsplat): per-stage wall time, start-up and model-loading shares, peak memory (tools/bench_chain.py);
#    it also runs generate.py end to end on CUDA in fp16;
# 3. tiny model: fp16 (the original's autocast) and bf16 samples against fp32 (max image difference);
# 4. the first row of 1 with the step networks compiled (generate.py --compile default): its first step
#    (the compile) and its steps, against the same row uncompiled (a separate part: a slow compile cannot cost 1);
# 5. the parity report on CUDA (fp32, TF32 off) against ../shared/reference.
# Every part runs under its own timeout, so a slow one cannot eat the budget; the log is $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."

# The GPU machine lacks open_clip (and friends): install the wheels carried in .whl/.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log

# part NAME SECONDS COMMAND...: run COMMAND with a time limit, logging its output and exit status.
part() {
    local name=$1 limit=$2 start=$SECONDS
    shift 2
    echo "=== $name (limit ${limit} s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$LOG"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee -a "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda)" 2>&1 | tee -a "$LOG"

part full 150 python3 -m tools.bench_generate --device cuda --frames 16 --precision fp16 \
    --batch_view_num 16 4 --batch_frame_num 4 16 --guidance decomposed --steps-to-time 2 --sample_steps 50 \
    --profile 25 --json "$OUT/full.json"
part chain 180 python3 -m tools.bench_chain --device cuda --json "$OUT/chain.json"
part drift 75 python3 -m tools.bench_generate --drift --device cuda --precision fp16 bf16 --frames 3 \
    --sample_steps 10 --json "$OUT/drift.json"
part compile 120 python3 -m tools.bench_generate --device cuda --frames 16 --precision fp16 --batch_view_num 16 \
    --batch_frame_num 4 --guidance decomposed --steps-to-time 2 --no-plain --no-breakdown --no-decode \
    --compile default --json "$OUT/compile.json"
part parity 60 python3 -m tools.parity_report --device cuda --all --json "$OUT/parity_cuda.json"
echo "=== done; JSON in $OUT" | tee -a "$LOG"
