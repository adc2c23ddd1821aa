"""Efficient4D's time-synchronised DDIM sampler for the SyncDreamer model.

Per DDIM step (``SyncDDIMSampler.denoise_apply``):
  1. build every frame's spatial volume from the current noisy views (fp32),
  2. with ``smooth_filter``, blend the volumes across frames with ``get_w`` (the temporal sync),
  3. per chunk of views (and frames), sample the frustum features and run the guided UNet,
  4. take the DDIM step (eta 1: fresh noise except at the last step).
All frames start from one shared initial noise. Every random draw comes from the generator of the
model's device in the original's order: (1) the posterior sample in ``model.prepare``, (2) the initial
noise (1,V,4,h,w), (3) one (F,V,4,h,w) draw per step except the last.

Frames can be split over several devices (model replicas made once, when the sampler is built) and
over the processes of a torch.distributed group (``process_group``; see ``ldm.distributed``): every
process gathers all frames' spatial volumes before the smoothing and makes the full-size random draws
of a single process, keeping its own frames' slice. Chunking views, frames, devices or processes never
changes which numbers are computed, only how many at once.
"""
import numbers
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from copy import deepcopy
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from ldm.distributed import FrameShard, split_frames

FIRST_STAGE_SCALE_FACTOR = 0.18215

# Hand-written smoothing weights of the original for 2..4 frames: (cyclic, non-cyclic).
_SMALL_W = {
    2: ([[0.75, 0.25], [0.25, 0.75]],
        [[0.75, 0.25], [0.25, 0.75]]),
    3: ([[0.70, 0.15, 0.15], [0.15, 0.70, 0.15], [0.15, 0.15, 0.70]],
        [[0.70, 0.20, 0.10], [0.20, 0.60, 0.20], [0.10, 0.20, 0.70]]),
    4: ([[0.70, 0.10, 0.10, 0.10], [0.10, 0.70, 0.10, 0.10], [0.10, 0.10, 0.70, 0.10], [0.10, 0.10, 0.10, 0.70]],
        [[0.70, 0.20, 0.10, 0.00], [0.15, 0.60, 0.15, 0.10], [0.10, 0.15, 0.60, 0.15], [0.00, 0.10, 0.20, 0.70]]),
}


def smoothing_kernel(frame_num: int) -> list[int]:
    """Centred temporal kernel for ``frame_num >= 5``.

    The original meant 5 taps for 5-6 frames, but an ``if`` where an ``elif`` belongs overwrote it with
    the 7-tap kernel (so 5/6 frames blended too widely and cyclic 5/6 crashed). We use the 5 taps.
    """
    if frame_num < 7:
        return [1, 1, 6, 1, 1]
    if frame_num < 13:
        return [1, 1, 1, 6, 1, 1, 1]
    return [1, 1, 1, 1, 1, 2, 14, 2, 1, 1, 1, 1, 1]


def get_w(frame_num: int, is_cyc: int | bool) -> Tensor:
    """(F,F) volume-blending weights; row i weights frame j's volume for frame i. Rows are not normalised.

    dtypes follow the original: int64 [[1]] for 1 frame, float32 for 2-4 frames, float64 from 5 frames
    on (then the blend is computed in float64). Non-cyclic: the kernel on the diagonals, cut at the
    ends; cyclic: the kernel wrapped around (frame 0 neighbours frame F-1).
    """
    if frame_num < 1:
        raise ValueError(f"get_w needs at least one frame, got {frame_num}")
    if frame_num == 1:
        return torch.tensor([[1]])
    if frame_num in _SMALL_W:
        cyclic, banded = _SMALL_W[frame_num]
        return torch.tensor(cyclic if is_cyc else banded)

    kernel = np.asarray(smoothing_kernel(frame_num), dtype=np.float64)
    mid = len(kernel) // 2
    offset = np.arange(frame_num)[:, None] - np.arange(frame_num)[None, :]  # row - column
    if is_cyc:
        # Wrap the offset into [-mid, F - mid): each row is the kernel rolled to its frame.
        offset = (offset + mid) % frame_num - mid
    # The kernels are symmetric, so the sign convention of the offset does not matter.
    w = np.where(np.abs(offset) <= mid, kernel[np.clip(offset + mid, 0, len(kernel) - 1)], 0.0)
    return torch.from_numpy(w)


def smooth_volumes(spatial_volume: Tensor, w: Tensor) -> Tensor:
    """Blend frames' volumes: out[i] = sum_j w[i,j] * vol[j] / sum_j w[i,j].

    spatial_volume: (F,C,V,V,V); w: (R,F), the rows to compute (all F, or one process's frames) ->
    (R,C,V,V,V). The arithmetic runs in the promoted dtype of the two (float64 for F >= 5, as the
    original) and is stored back in the volume's dtype. A loop over rows keeps the memory at one
    (F,C,V,V,V) product and the summation order of the original.
    """
    w = w.to(spatial_volume.device)
    out = spatial_volume.new_empty((w.shape[0], *spatial_volume.shape[1:]))
    for i in range(w.shape[0]):
        row = w[i].view(-1, 1, 1, 1, 1)
        out[i] = (spatial_volume * row).sum(0) / w[i].sum()
    return out


# ---------------------------------------------------------------- guidance

UNet = Callable[[Tensor, Tensor, Tensor, dict, Tensor], Tensor]


def _cat_volumes(volume_feats: dict, parts: Sequence[str]) -> dict:
    """Stack the frustum features per guidance branch: 'v' keeps them, '0' zeroes them."""
    return {k: torch.cat([v if p == "v" else torch.zeros_like(v) for p in parts], 0)
            for k, v in volume_feats.items()}


def classifier_free_guidance(unet: UNet, x: Tensor, t: Tensor, clip_embed: Tensor, volume_feats: dict,
                             x_concat: Tensor, scale: float) -> Tensor:
    """eps_uc + scale * (eps - eps_uc), eps_uc with every condition zeroed; one 2x batch.

    x: (B,4,h,w), t: (B,), clip_embed: (B,1,768), volume_feats: {width: (B,C,D,w,w)}, x_concat: (B,4,h,w).
    A scale of 1 is the plain conditional prediction (one 1x batch), as in the original.
    """
    if scale == 1.0:
        return unet(x, t, clip_embed, volume_feats, x_concat)
    s, s_uc = unet(torch.cat([x, x], 0), torch.cat([t, t], 0),
                   torch.cat([clip_embed, torch.zeros_like(clip_embed)], 0),
                   _cat_volumes(volume_feats, "v0"),
                   torch.cat([x_concat, torch.zeros_like(x_concat)], 0)).chunk(2)
    return s_uc + scale * (s - s_uc)


def decomposed_guidance(unet: UNet, x: Tensor, t: Tensor, clip_embed: Tensor, volume_feats: dict,
                        x_concat: Tensor, scales: Sequence[float]) -> Tensor:
    """eps + s1 * (eps - eps_uc1) + s2 * (eps - eps_uc2); one 3x batch (shapes as classifier_free_guidance).

    uc1 drops the image (zero CLIP embedding and zero input latent, volume kept); uc2 drops the volume
    and feeds the input latent x4, exactly as SyncDreamer's decomposed guidance.
    """
    s, s_uc1, s_uc2 = unet(torch.cat([x, x, x], 0), torch.cat([t, t, t], 0),
                           torch.cat([clip_embed, torch.zeros_like(clip_embed), clip_embed], 0),
                           _cat_volumes(volume_feats, "vv0"),
                           torch.cat([x_concat, torch.zeros_like(x_concat), x_concat * 4], 0)).chunk(3)
    return s + scales[0] * (s - s_uc1) + scales[1] * (s - s_uc2)


def check_guidance(cfg_scale) -> float | tuple[float, float]:
    """A number selects classifier-free guidance, a pair of numbers decomposed guidance."""
    if isinstance(cfg_scale, numbers.Real) and not isinstance(cfg_scale, bool):
        return float(cfg_scale)
    if isinstance(cfg_scale, (list, tuple)) and len(cfg_scale) == 2 \
            and all(isinstance(s, numbers.Real) for s in cfg_scale):
        return float(cfg_scale[0]), float(cfg_scale[1])
    raise ValueError(f"cfg_scale must be a number (CFG) or a pair [image, volume] (DG), got {cfg_scale!r}")


def guided_noise(unet: UNet, x: Tensor, t: Tensor, clip_embed: Tensor, volume_feats: dict, x_concat: Tensor,
                 cfg_scale: float | tuple[float, float]) -> Tensor:
    """(B,4,h,w) guided noise prediction; a float is CFG, a pair DG (see check_guidance)."""
    if isinstance(cfg_scale, float):
        return classifier_free_guidance(unet, x, t, clip_embed, volume_feats, x_concat, cfg_scale)
    return decomposed_guidance(unet, x, t, clip_embed, volume_feats, x_concat, cfg_scale)


# ---------------------------------------------------------------- schedule

def make_ddim_timesteps(num_steps: int, discretize: str, num_ddpm_timesteps: int) -> np.ndarray:
    """DDIM timesteps, ascending (int64), as the original: multiples of T // num_steps, plus one.

    Fix: when T // num_steps divides T - 1 (e.g. 3, 9 or 27 steps) the original's last timestep is T
    and indexing the schedule crashes; we clamp it to T - 1 (the noisiest step) and drop a duplicate.
    That keeps every step count that works in the original unchanged (including that e.g. 7 steps
    gives 8 timesteps, because the grid uses the floor of T / num_steps).
    """
    if num_steps < 1 or num_steps > num_ddpm_timesteps:
        raise ValueError(f"DDIM steps must be in 1..{num_ddpm_timesteps}, got {num_steps}")
    if discretize == "uniform":
        steps = np.arange(0, num_ddpm_timesteps, num_ddpm_timesteps // num_steps)
    elif discretize == "quad":
        steps = (np.linspace(0, np.sqrt(num_ddpm_timesteps * 0.8), num_steps) ** 2).astype(int)
    else:
        raise ValueError(f"unknown DDIM discretisation {discretize!r}; use 'uniform' or 'quad'")
    steps = (steps + 1).astype(np.int64)
    if steps[-1] >= num_ddpm_timesteps:  # only the last one can overshoot: the grid ascends
        steps[-1] = num_ddpm_timesteps - 1
        if len(steps) > 1 and steps[-2] == steps[-1]:
            steps = steps[:-1]
    return steps


class StepResult(NamedTuple):
    """What one DDIM step produced; passed to ``sample(..., callback=)``."""
    index: int          # position in the schedule, counting down to 0
    time_steps: Tensor  # (F,) int64 timestep of each frame
    e_t: Tensor         # (F,V,4,h,w) guided noise prediction
    x_prev: Tensor      # (F,V,4,h,w) latent after the step


def _indexed(device: torch.device) -> torch.device:
    """'cuda' -> 'cuda:<current>', so that it compares equal to the device a model's tensors report."""
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class SyncDDIMSampler:
    """DDIM (eta 1 by default) over all frames at once, with the spatial volumes synchronised in time.

    model: a SyncMultiviewDiffusion in eval mode; ddim_num_steps: requested DDIM steps (see
    make_ddim_timesteps); latent_size: h = w of the latents (default model.latent_size = image_size/8);
    devices: where frames are split (default: the model's device); extra devices get one replica each,
    made here, once; autocast_dtype: run the frustum-feature + UNet part under autocast with this dtype
    (None = the model's dtype; the original uses fp16 on CUDA); batch_frame_num: frames per UNet call
    on a device (default all of them); process_group: a torch.distributed group whose processes share
    the frames (``ldm.distributed.Session.frame_group``; None: this process does them all); progress:
    show a tqdm bar.
    """

    def __init__(self, model: nn.Module, ddim_num_steps: int, ddim_discretize: str = "uniform",
                 ddim_eta: float = 1.0, latent_size: int | None = None,
                 devices: Sequence[str | torch.device] | None = None,
                 autocast_dtype: torch.dtype | None = None, batch_frame_num: int | None = None,
                 process_group=None, progress: bool = True):
        self.model = model
        self.latent_size = model.latent_size if latent_size is None else latent_size
        self.autocast_dtype = autocast_dtype
        self.batch_frame_num = batch_frame_num
        self.process_group = process_group
        self.progress = progress
        self._make_schedule(ddim_num_steps, ddim_discretize, ddim_eta)
        self.device = next(model.parameters()).device
        devices = [self.device] if devices is None else [_indexed(torch.device(d)) for d in devices]
        # Same device as the model: share it (inference is stateless); others get one copy each.
        self.replicas = [(d, model if d == self.device else deepcopy(model).to(d)) for d in devices]

    def _make_schedule(self, ddim_num_steps: int, ddim_discretize: str, ddim_eta: float) -> None:
        """Schedule tensors on the CPU in float32, with the original's mix of float64 and float32 steps."""
        alphas_cumprod = self.model.alphas_cumprod.detach().float().cpu()  # (T,)
        self.ddim_timesteps = make_ddim_timesteps(ddim_num_steps, ddim_discretize, alphas_cumprod.shape[0])
        steps = torch.from_numpy(self.ddim_timesteps)
        alphas = alphas_cumprod[steps].double()
        # At the last step (index 0) a_prev is alphas_cumprod[0], not 1, as in the original.
        alphas_prev = torch.cat([alphas_cumprod[0:1], alphas_cumprod[steps[:-1]]], 0)
        sigmas = ddim_eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
        self.ddim_alphas = alphas.float()
        self.ddim_alphas_prev = alphas_prev.float()
        self.ddim_sigmas = sigmas.float()
        self.ddim_sqrt_one_minus_alphas = torch.sqrt(1.0 - self.ddim_alphas)

    # ------------------------------------------------------------ one step

    def ddim_step(self, x_t: Tensor, e_t: Tensor, index: int, shard: FrameShard | None = None) -> Tensor:
        """x_prev = sqrt(a_prev) x0 + sqrt(max(1 - a_prev - sigma^2, 1e-7)) e + sigma z  (z only if index > 0).

        x_t, e_t: (F,V,4,h,w), the frames of ``shard`` (default: all). Unless index is 0, draws one randn
        over all of the shard's frames on x_t's device and keeps the shard's rows.
        """
        def scalar(values: Tensor) -> Tensor:
            return values[index].to(x_t.device).view(1, 1, 1, 1, 1)

        a_t, a_prev = scalar(self.ddim_alphas), scalar(self.ddim_alphas_prev)
        sqrt_one_minus_at, sigma_t = scalar(self.ddim_sqrt_one_minus_alphas), scalar(self.ddim_sigmas)
        pred_x0 = (x_t - sqrt_one_minus_at * e_t) / a_t.sqrt()
        dir_xt = torch.clamp(1.0 - a_prev - sigma_t ** 2, min=1e-7).sqrt() * e_t
        x_prev = a_prev.sqrt() * pred_x0 + dir_xt
        if index > 0:
            shard = shard or FrameShard(x_t.shape[0])
            noise = torch.randn((shard.num_frames, *x_t.shape[1:]), device=x_t.device, dtype=x_t.dtype)
            x_prev = x_prev + sigma_t * shard.local(noise)
        return x_prev

    @torch.no_grad()
    def _predict_chunk(self, replica: nn.Module, device: torch.device, frames: range, views: range,
                       x_t: Tensor, x_input: Tensor, spatial_volume: Tensor, clip_embed: Tensor,
                       t_embed: Tensor, v_embed: Tensor, time_steps: Tensor, cfg_scale) -> Tensor:
        """Guided noise (len(frames), len(views), 4, h, w) for a block of frames x views on ``device``.

        Rows of the UNet batch are frame-major, view-minor, as in the original.
        """
        f = slice(frames.start, frames.stop)
        num_frames, num_views = len(frames), len(views)
        autocast = (torch.autocast(device_type=device.type, dtype=self.autocast_dtype)
                    if self.autocast_dtype is not None else nullcontext())
        with autocast:
            x = x_t[f, views.start:views.stop].reshape(num_frames * num_views, *x_t.shape[2:]).to(device)
            t = time_steps[f].repeat_interleave(num_views).to(device)
            target_indices = torch.arange(views.start, views.stop, device=device).repeat(num_frames, 1)
            clip_, volume_feats, x_concat = replica.get_target_view_feats(
                x_input[f].to(device), spatial_volume[f].to(device), clip_embed[f].to(device),
                t_embed[f].to(device), v_embed[f].to(device), target_indices)
            e = guided_noise(replica.model, x, t, clip_, volume_feats, x_concat, cfg_scale)
        return e.view(num_frames, num_views, *x_t.shape[2:])

    def _frame_chunks(self, group: range) -> list[range]:
        size = self.batch_frame_num or len(group)
        return [range(s, min(s + size, group.stop)) for s in range(group.start, group.stop, size)]

    def predict_noise(self, x_t: Tensor, x_input: Tensor, spatial_volume: Tensor, clip_embed: Tensor,
                      t_embed: Tensor, v_embed: Tensor, time_steps: Tensor, cfg_scale, batch_view_num: int,
                      executor: ThreadPoolExecutor | None) -> Tensor:
        """(F,V,4,h,w) guided noise, in chunks of batch_view_num views, frames split over the devices."""
        num_frames, num_views = x_t.shape[:2]
        e_t = torch.empty(x_t.shape, dtype=torch.float32, device=x_t.device)
        groups = split_frames(num_frames, len(self.replicas))
        for start in range(0, num_views, batch_view_num):
            views = range(start, min(start + batch_view_num, num_views))
            jobs = [(replica, device, frames)
                    for (device, replica), group in zip(self.replicas, groups)
                    for frames in self._frame_chunks(group)]

            def run(job):
                replica, device, frames = job
                return frames, self._predict_chunk(replica, device, frames, views, x_t, x_input, spatial_volume,
                                                   clip_embed, t_embed, v_embed, time_steps, cfg_scale)

            results = executor.map(run, jobs) if executor is not None else map(run, jobs)
            for frames, e in results:
                e_t[frames.start:frames.stop, views.start:views.stop] = e.to(e_t.device)
        return e_t

    @torch.no_grad()
    def denoise_apply(self, x_t: Tensor, x_input: Tensor, clip_embed: Tensor, elevation: Tensor,
                      time_steps: Tensor, index: int, cfg_scale, batch_view_num: int, smooth_filter: bool,
                      is_cyc: int, executor: ThreadPoolExecutor | None = None,
                      shard: FrameShard | None = None) -> tuple[Tensor, Tensor]:
        """One synchronised DDIM step. x_t: (F,V,4,h,w), the frames of ``shard`` (default: all);
        returns (x_prev, e_t), both (F,V,4,h,w). The smoothing sees every frame of the shard's group."""
        model = self.model
        num_frames = x_t.shape[0]
        shard = shard or FrameShard(num_frames)
        v_embed = model.get_viewpoint_embedding(num_frames, elevation)  # (F,V,4)
        t_embed = model.embed_time(time_steps)  # (F,256)
        spatial_volume = model.spatial_volume.construct_spatial_volume(
            x_t, t_embed, v_embed, model.poses, model.Ks)  # (F,C,S,S,S)
        if smooth_filter:
            rows = get_w(shard.num_frames, is_cyc)[shard.frames.start:shard.frames.stop]
            spatial_volume = smooth_volumes(shard.gather(spatial_volume), rows)
        e_t = self.predict_noise(x_t, x_input, spatial_volume, clip_embed, t_embed, v_embed, time_steps,
                                 cfg_scale, batch_view_num, executor)
        return self.ddim_step(x_t, e_t, index, shard), e_t

    # ------------------------------------------------------------ the loop

    @torch.no_grad()
    def sample_latents(self, clip_embed: Tensor, x_input: Tensor, elevation: Tensor, cfg_scale,
                       batch_view_num: int, smooth_filter: bool = False, is_cyc: int = 0,
                       callback: Callable[[StepResult], None] | None = None,
                       shard: FrameShard | None = None) -> Tensor:
        """Denoise all frames from one shared noise. clip_embed (F,1,768), x_input (F,4,h,w), elevation (F,):
        the frames of ``shard`` (default: all, in this process).

        Returns the final latents (F,V,4,h,w).
        """
        cfg_scale = check_guidance(cfg_scale)
        if batch_view_num < 1:
            raise ValueError(f"batch_view_num must be at least 1, got {batch_view_num}")
        num_frames, num_views, size = clip_embed.shape[0], self.model.view_num, self.latent_size
        x_t = torch.randn([1, num_views, 4, size, size], device=self.device).expand(num_frames, -1, -1, -1, -1)
        total = len(self.ddim_timesteps)
        parallel = len(self.replicas) > 1
        with ThreadPoolExecutor(max_workers=len(self.replicas)) if parallel else nullcontext() as executor:
            for i, step in enumerate(tqdm(np.flip(self.ddim_timesteps), desc="DDIM Sampler", total=total,
                                          disable=not self.progress)):
                index = total - i - 1
                time_steps = torch.full((num_frames,), int(step), device=self.device, dtype=torch.long)
                x_t, e_t = self.denoise_apply(x_t, x_input, clip_embed, elevation, time_steps, index, cfg_scale,
                                              batch_view_num, smooth_filter, is_cyc, executor, shard)
                if callback is not None:
                    callback(StepResult(index, time_steps, e_t, x_t))
        return x_t

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """(F,V,4,h,w) latents -> (F,V,3,H,W) images clamped to [-1,1], decoded view by view in fp32."""
        views = [self.model.decode_first_stage(latents[:, v]) for v in range(latents.shape[1])]
        return torch.stack(views, 1).clamp(-1.0, 1.0)

    @torch.no_grad()
    def sample(self, model: nn.Module, batch: dict, cfg_scale, batch_view_num: int = 16,
               smooth_filter: bool = False, is_cyc: int = 0,
               callback: Callable[[StepResult], None] | None = None) -> Tensor:
        """Images (F,V,3,H,W) in [-1,1] for ``batch`` = {input_image (F,H,W,3), input_elevation (F,1)}.

        ``model`` must be the model this sampler was built for (``model.sample`` passes itself). With a
        ``process_group`` every process passes all frames and gets all images; it samples its own frames.
        """
        if model is not self.model:
            raise ValueError("SyncDDIMSampler.sample got a different model than the one it was built for")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        # every process encodes every frame: the same random draws as a single process
        clip_embed, x_input, elevation = model.prepare(batch)
        shard = FrameShard.of_group(clip_embed.shape[0], self.process_group)
        latents = self.sample_latents(shard.local(clip_embed), shard.local(x_input), shard.local(elevation), cfg_scale,
                                      batch_view_num, smooth_filter, is_cyc, callback, shard)
        return shard.gather(self.decode(latents))
