"""Benchmark stage 1 (SyncDreamer with Efficient4D's synchronised DDIM) with random weights: no checkpoint.

Three modes, each printing one table and, with --json, writing the numbers:

* steps (default): the model of --cfg on --device, --frames frames x the config's views. One row per
  precision x --batch_view_num x --batch_frame_num (frames per UNet call default to generate.py's
  choice): seconds per DDIM step after warm-up, the projection to --sample_steps steps, peak memory
  (CUDA max_memory_allocated; CPU: the process's peak RSS), the spatial-volume / frustum-volume / UNet /
  other split (synchronised timers, one extra step), TFLOP/s and the ratio to the compute floor (FLOPs
  counted once on the meta device; floor = those FLOPs at --peak_tflops). A PLAIN row (softmax attention
  written out) with the first row's settings gives the plain/fast ratio. VAE encoding + CLIP ("prepare")
  and decoding of all views are timed once; --profile N prints the top operators of one step.
* --unet-only: the config's UNet alone, one forward of --unet_batch views: the fp32 fast path (fused
  attention, folded depth attention) vs the plain path (speed-up, max difference) and each lower
  --precision under autocast, weights stored as generate.py stores them (speed-up, drift); the
  variants are timed in interleaved rounds, so a changing machine load hits them alike.
* --drift: whole samples of the tiny model in fp32 and in each other --precision, same seed: the
  max difference of the final images; on CUDA also whether every attention call runs a fused kernel.

    python -m tools.bench_generate --device cuda --precision fp16 bf16 --batch_view_num 16 4 --json b.json
    python -m tools.bench_generate --unet-only --device cpu --precision bf16
    python -m tools.bench_generate --drift --device cpu --precision fp16 bf16

Random weights: on CUDA the model is built directly on the GPU with the constructors' init (fast; the
timing does not depend on the values); on the CPU with ldm.checkpoint.randomize_weights.
"""
