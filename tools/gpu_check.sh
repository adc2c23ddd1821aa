#!/usr/bin/env bash
# Stage 1 and the chain on a lent GPU (H100/H200) in at most 10 minutes: the GPU rows first, then checks of the CUDA paths.
#
#   bash tools/gpu_wheels.sh         (here first: the wheels that machine lacks, into .whl/)
#   bash tools/gpu_check.sh          (from the repo root, on the GPU machine, carrying .whl; results in $OUT)
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
# 5. the parity report on CUDA (fp32, TF32 off) against the fixtures in $EFFICIENT4D_REFERENCE. They do
#    not travel (../shared stays behind) and, at 78 MB, pass the 64 MiB a call carries: a second call can
#    carry a copy of reference/ without fixtures/rife (58 MB) and no .whl, and run
#    EFFICIENT4D_REFERENCE=.ref python3 -m tools.parity_report --device cuda --all --stage <all but rife>.
# Every part runs under its own timeout, so a slow one cannot eat the budget; the log is $OUT/gpu_check.log.
set -u
cd "$(dirname "$0")/.."

OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_check.log

# The GPU machine lacks open_clip (and friends): install the wheels carried in .whl/ (tools/gpu_wheels.sh).
install_wheels() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$@"; }
install_wheels /tmp/site $(ls .whl/*.whl | grep -v /gsplat-) && export PYTHONPATH=/tmp/site:$PWD
# gsplat's CUDA kernels compile on first use: minutes of CPU work, done here in the background (8 of the
# 16 cores, the rest left to the benchmarks) while part 1 keeps the GPU busy. gsplat goes on the path of
# the chain (part 2) only if that build finished in time; otherwise stage 6 runs on our PyTorch
# rasterizer, and the log says so.
GSPLAT_BUILD=
if ls .whl/gsplat-*.whl > /dev/null 2>&1 && install_wheels /tmp/gsplat .whl/gsplat-*.whl; then
    PYTHONPATH=/tmp/gsplat:$PYTHONPATH MAX_JOBS=8 TORCH_CUDA_ARCH_LIST=9.0 timeout 400 \
        python3 -c "from gsplat.cuda._backend import _C; assert _C is not None; print('gsplat kernels built')" \
        > "$OUT/gsplat_build.log" 2>&1 &
    GSPLAT_BUILD=$!
fi

# use_gsplat_if_built SECONDS: wait up to SECONDS for the background build; on success put gsplat on the path.
use_gsplat_if_built() {
    [ -n "$GSPLAT_BUILD" ] || { echo "gsplat: not carried; stage 6 uses the PyTorch rasterizer" | tee -a "$LOG"; return; }
    local waited=0
    while kill -0 "$GSPLAT_BUILD" 2> /dev/null && [ "$waited" -lt "$1" ]; do sleep 5; waited=$((waited + 5)); done
    if ! kill -0 "$GSPLAT_BUILD" 2> /dev/null && wait "$GSPLAT_BUILD"; then
        export PYTHONPATH=/tmp/gsplat:$PYTHONPATH
        echo "gsplat: kernels built; stage 6 uses gsplat" | tee -a "$LOG"
    else
        echo "gsplat: kernels not built in time (see gsplat_build.log); stage 6 uses the PyTorch rasterizer" | tee -a "$LOG"
    fi
}

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
use_gsplat_if_built 60
part chain 180 python3 -m tools.bench_chain --device cuda --json "$OUT/chain.json"
part drift 75 python3 -m tools.bench_generate --drift --device cuda --precision fp16 bf16 --frames 3 \
    --sample_steps 10 --json "$OUT/drift.json"
part compile 120 python3 -m tools.bench_generate --device cuda --frames 16 --precision fp16 --batch_view_num 16 \
    --batch_frame_num 4 --guidance decomposed --steps-to-time 2 --no-plain --no-breakdown --no-decode \
    --compile default --json "$OUT/compile.json"
part parity 60 python3 -m tools.parity_report --device cuda --all --json "$OUT/parity_cuda.json"  # fixtures: see 5
echo "=== done; JSON in $OUT" | tee -a "$LOG"
