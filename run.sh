#!/usr/bin/env bash
# Efficient4D, the whole chain:  bash run.sh DATA_NAME OUTPUT_NAME DEVICES N_FRAMES CYCLE
#
#   DATA_NAME    input video folder data/DATA_NAME (RGBA PNG frames), or a video file (clip.mp4, .mov,
#                .webm, .gif, ...): stage 0 (prepare_video.py) then writes N_FRAMES frames to data/clip
#   OUTPUT_NAME  writes output/OUTPUT_NAME and recon_data/OUTPUT_NAME (and recon_out/ with RECON=1)
#   DEVICES      GPU list as CUDA_VISIBLE_DEVICES ("0" or "0,1,2,3"), or "cpu"
#   N_FRAMES     frames to generate (taken evenly from the video)
#   CYCLE        1 if the video loops (first and last frames alike), else 0
#
# Every stage flag is a shell variable that the environment overrides, e.g.
#   ELEVATION=30 SAMPLE_STEPS=20 bash run.sh egret egret_e30 0 16 0
# A rerun skips finished stages (markers in output/OUTPUT_NAME/.stages); FORCE=1 redoes all.
set -euo pipefail
CALLER_DIR=$PWD
cd "$(dirname "$0")"

: "${PYTHON:=python}"
: "${VIDEO:=}"                                # a video file: stage 0 writes its frames to data/DATA_NAME
: "${MATTING:=auto}"                          # stage 0: auto, background, rembg, alpha or none
: "${MATTING_MODEL:=}"                        # stage 0, MATTING=rembg: the ONNX model (empty: ~/.u2net/u2net.onnx)
: "${VIDEO_START:=}"                          # stage 0: first frame index or time (1.5s); empty: the start
: "${VIDEO_END:=}"                            # stage 0: frame index or time to stop before; empty: the end
: "${CFG:=configs/syncdreamer.yaml}"          # model config; configs/tiny.yaml for the tiny model
: "${CKPT:=ckpt/syncdreamer-pretrain.ckpt}"   # or "random": seeded random weights (noise images)
: "${RIFE_MODEL:=ckpt}"                       # folder holding flownet.pkl, or "random"
: "${CROP_SIZE:=200}"
: "${ELEVATION:=0}"
: "${SEED:=3407}"
: "${SAMPLE_STEPS:=50}"
: "${BATCH_VIEW_NUM:=8}"
: "${CFG_SCALES:=2.0 1.0}"
: "${SMOOTH_FILTER:=1}"
: "${DECOMPOSED_SAMPLING:=1}"
: "${CROP_MODE:=per_frame}"
: "${PRECISION:=}"                            # empty: fp16 on CUDA (as the original), fp32 on the CPU
: "${ATTENTION:=}"                            # empty: the fast path on CUDA, the original's exact one on the CPU
: "${COMPILE:=off}"                           # torch.compile mode of stage 1's networks: off, default, reduce-overhead, max-autotune
: "${INTERP:=1}"                              # 0 skips RIFE interpolation (N_FRAMES data frames)
: "${PER_VIEW:=0}"                            # 1 interpolates each view separately
: "${RECON:=0}"                               # 1 adds stage 6, the 4D Gaussian reconstruction
: "${RECON_ITERATIONS:=3000}"
: "${RECON_RESOLUTION:=1}"
: "${RECON_EVAL:=1}"                          # 1 holds the test views out of stage 6's training; 0 trains on all 16
: "${RECON_VIDEO_FRAMES:=120}"                # frames of each stage 6 turntable video; 0: no videos
: "${FORCE:=0}"
: "${DATA_ROOT:=data}"
: "${OUTPUT_ROOT:=output}"
: "${RECON_DATA_ROOT:=recon_data}"
: "${RECON_OUT_ROOT:=recon_out}"

usage="usage: bash run.sh DATA_NAME OUTPUT_NAME DEVICES N_FRAMES CYCLE   (e.g. bash run.sh walking_white_faced_egret egret 0 16 0)"
fail() { echo "error: $*" >&2; echo "$usage" >&2; exit 2; }

[ $# -eq 5 ] || fail "expected 5 arguments, got $#"
DATA_NAME=$1 OUTPUT_NAME=$2 DEVICES=$3 N_FRAMES=$4 CYCLE=$5
[[ $N_FRAMES =~ ^[0-9]+$ ]] && [ "$N_FRAMES" -ge 1 ] || fail "N_FRAMES must be a whole number >= 1, got '$N_FRAMES'"
[[ $CYCLE == 0 || $CYCLE == 1 ]] || fail "CYCLE must be 0 or 1, got '$CYCLE'"
[[ $DEVICES == cpu || $DEVICES =~ ^[0-9]+(,[0-9]+)*$ ]] || fail "DEVICES must be a GPU list like 0 or 0,1,2,3, or cpu; got '$DEVICES'"
[[ $OUTPUT_NAME =~ ^[A-Za-z0-9._-]+$ ]] || fail "OUTPUT_NAME must be a plain folder name, got '$OUTPUT_NAME'"
# A video file as DATA_NAME: stage 0 writes its frames to data/<its stem>. VIDEO and DATA_NAME are
# looked up from where run.sh was called, then in DATA_ROOT.
if [ -z "$VIDEO" ] && [[ ${DATA_NAME,,} =~ \.(mp4|mov|webm|mkv|avi|m4v|gif)$ ]]; then
    VIDEO=$DATA_NAME
    DATA_NAME=$(basename "${DATA_NAME%.*}")
fi
if [ -n "$VIDEO" ]; then
    if [[ $VIDEO != /* ]]; then
        if [ -f "$CALLER_DIR/$VIDEO" ]; then VIDEO=$CALLER_DIR/$VIDEO; elif [ -f "$DATA_ROOT/$VIDEO" ]; then VIDEO=$DATA_ROOT/$VIDEO; fi
    fi
    [ -f "$VIDEO" ] || fail "video $VIDEO does not exist; pass a video file (mp4, mov, webm, gif, ...) or a folder name under $DATA_ROOT"
    [[ $DATA_NAME =~ ^[A-Za-z0-9._-]+$ ]] || fail "DATA_NAME must be a plain folder name for stage 0's frames, got '$DATA_NAME'"
else
    [ -d "$DATA_ROOT/$DATA_NAME" ] || fail "input folder $DATA_ROOT/$DATA_NAME does not exist; put RGBA PNG frames there (see data/README.md)"
fi
for flag in SMOOTH_FILTER DECOMPOSED_SAMPLING INTERP PER_VIEW RECON RECON_EVAL FORCE; do
    [[ ${!flag} == 0 || ${!flag} == 1 ]] || fail "$flag must be 0 or 1, got '${!flag}'"
done
[[ $RECON_VIDEO_FRAMES =~ ^[0-9]+$ ]] || fail "RECON_VIDEO_FRAMES must be a whole number (0: no videos), got '$RECON_VIDEO_FRAMES'"
[[ $PRECISION =~ ^(|fp16|bf16|fp32)$ ]] || fail "PRECISION must be fp16, bf16, fp32 or empty, got '$PRECISION'"
[[ $ATTENTION =~ ^(|auto|sdpa|plain)$ ]] || fail "ATTENTION must be auto, sdpa, plain or empty, got '$ATTENTION'"
[[ $COMPILE =~ ^(off|default|reduce-overhead|max-autotune)$ ]] || fail "COMPILE must be off, default, reduce-overhead or max-autotune, got '$COMPILE'"

INPUT=$DATA_ROOT/$DATA_NAME
# Stage 0 replaces data/DATA_NAME only if it wrote that folder itself (its report is there), or with FORCE=1.
stage0_replace=()
{ [ "$FORCE" = 1 ] || [ -f "$INPUT/preview/report.json" ]; } && stage0_replace=(--force)
stage0_flags=()
if [ -n "$VIDEO" ]; then
    stage0_flags=(--input "$VIDEO" --output "$INPUT" --num_frames "$N_FRAMES" --matting "$MATTING")
    [ -n "$MATTING_MODEL" ] && stage0_flags+=(--matting_model "$MATTING_MODEL")
    [ -n "$VIDEO_START" ] && stage0_flags+=(--start "$VIDEO_START")
    [ -n "$VIDEO_END" ] && stage0_flags+=(--end "$VIDEO_END")
fi

# Cheap checks first: inputs, flags, weights and GPUs before any model is loaded.
preflight_video=()
if [ -n "$VIDEO" ]; then
    preflight_video=(--video "$VIDEO" --matting "$MATTING" --matting_model "$MATTING_MODEL")
    [ -n "$VIDEO_START" ] && preflight_video+=(--video_start "$VIDEO_START")
    [ -n "$VIDEO_END" ] && preflight_video+=(--video_end "$VIDEO_END")
    [ ${#stage0_replace[@]} -gt 0 ] && preflight_video+=(--replace)
fi
"$PYTHON" -m tools.preflight --input "$INPUT" --frame_num "$N_FRAMES" --crop_size "$CROP_SIZE" \
    --cfg "$CFG" --ckpt "$CKPT" --rife_model "$RIFE_MODEL" --devices "$DEVICES" "${preflight_video[@]}" || exit 2

if [ "$DEVICES" = cpu ]; then
    DEVICE=cpu
    NUM_GPUS=0
else
    export CUDA_VISIBLE_DEVICES=$DEVICES
    DEVICE=cuda
    NUM_GPUS=$(tr ',' '\n' <<<"$DEVICES" | wc -l)
fi

OUTPUT=$OUTPUT_ROOT/$OUTPUT_NAME
OUTPUT_RECON=$RECON_DATA_ROOT/$OUTPUT_NAME
MARKERS=$OUTPUT/.stages
LOGS=$OUTPUT/logs
mkdir -p "$MARKERS" "$LOGS" 2>/dev/null || { echo "error: cannot create $OUTPUT (read-only or no permission); set OUTPUT_ROOT to a writable folder" >&2; exit 2; }

run_start=$SECONDS
upstream_ran=0

# stage NAME COMMAND...: run COMMAND unless its marker records the same command as done.
stage() {
    local name=$1; shift
    local marker=$MARKERS/$name.done log=$LOGS/$name.log
    local signature="$*"
    if [ "$FORCE" = 0 ] && [ "$upstream_ran" = 0 ] && [ -f "$marker" ] && [ "$(cat "$marker")" = "$signature" ]; then
        echo "=== $name: done before, skipped (FORCE=1 redoes it)"
        return
    fi
    rm -f "$marker"
    echo "=== $name"
    local start=$SECONDS
    if ! "$@" 2>&1 | tee "$log"; then
        echo "=== $name FAILED after $((SECONDS - start)) s; log: $log" >&2
        exit 1
    fi
    printf '%s' "$signature" > "$marker.tmp" && mv "$marker.tmp" "$marker"
    upstream_ran=1
    echo "=== $name: $((SECONDS - start)) s"
}

# Stage 0: the video's frames, matted. --force is left out of the marker's command, so that it
# matches on a rerun whether or not data/DATA_NAME exists by then.
prepare_frames() { "$PYTHON" prepare_video.py "$@" "${stage0_replace[@]}" --device "$DEVICE"; }
[ -n "$VIDEO" ] && stage prepare prepare_frames "${stage0_flags[@]}"

gen_flags=(--cfg "$CFG" --ckpt "$CKPT" --input "$INPUT" --output "$OUTPUT" --crop_size "$CROP_SIZE"
    --crop_mode "$CROP_MODE" --elevation "$ELEVATION" --frame_num "$N_FRAMES" --is_cyc "$CYCLE" --seed "$SEED"
    --sample_steps "$SAMPLE_STEPS" --batch_view_num "$BATCH_VIEW_NUM" --cfg_scales $CFG_SCALES
    --device "$DEVICE")
[ -n "$PRECISION" ] && gen_flags+=(--precision "$PRECISION")
[ -n "$ATTENTION" ] && gen_flags+=(--attention "$ATTENTION")
[ "$COMPILE" != off ] && gen_flags+=(--compile "$COMPILE")
[ "$SMOOTH_FILTER" = 1 ] && gen_flags+=(--smooth_filter)
[ "$DECOMPOSED_SAMPLING" = 1 ] && gen_flags+=(--decomposed_sampling)
if [ "$NUM_GPUS" -gt 1 ]; then
    stage generate "$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NUM_GPUS" generate.py "${gen_flags[@]}"
else
    stage generate "$PYTHON" generate.py "${gen_flags[@]}"
fi

interp_flag=()
if [ "$INTERP" = 1 ] && [ "$N_FRAMES" -gt 1 ]; then
    per_view=()
    [ "$PER_VIEW" = 1 ] && per_view=(--per_view)
    stage interpolate "$PYTHON" frame_interpolation.py --root_path "$OUTPUT" --num_frame "$N_FRAMES" --cycle2 \
        --model "$RIFE_MODEL" --device "$DEVICE" "${per_view[@]}"
    interp_flag=(--interp)
fi
stage assemble "$PYTHON" concat_video.py --root_path "$OUTPUT" --num_frames "$N_FRAMES" "${interp_flag[@]}"
stage confidence "$PYTHON" video_confidence.py --root_path "$OUTPUT" --model "$RIFE_MODEL" --device "$DEVICE"
stage convert "$PYTHON" data_convertor.py --input "$OUTPUT" --output "$OUTPUT_RECON" --confidence
if [ "$RECON" = 1 ]; then
    recon_eval=--eval
    [ "$RECON_EVAL" = 0 ] && recon_eval=--no-eval
    stage reconstruct "$PYTHON" reconstruct.py --data "$OUTPUT_RECON" --output "$RECON_OUT_ROOT/$OUTPUT_NAME" \
        --iterations "$RECON_ITERATIONS" --resolution "$RECON_RESOLUTION" --device "$DEVICE" --seed "$SEED" \
        "$recon_eval" --video_frames "$RECON_VIDEO_FRAMES"
fi

echo "=== all stages done in $((SECONDS - run_start)) s"
echo "multi-view frames: $OUTPUT/data   previews: $OUTPUT/preview   4DGS dataset: $OUTPUT_RECON"
[ "$RECON" = 1 ] && echo "4D Gaussians and renders: $RECON_OUT_ROOT/$OUTPUT_NAME"
exit 0
