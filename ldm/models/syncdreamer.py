"""``SyncMultiviewDiffusion``: SyncDreamer's multi-view diffusion model (inference only).

Conditioning of one input frame: its CLIP image embedding (projected together with each target
view's 4-d viewpoint embedding by ``cc_projection``), its VAE latent concatenated to the UNet input,
and a spatial volume built from the noisy target views. The state_dict layout equals the original
Lightning module's, so ``syncdreamer-pretrain.ckpt`` loads unchanged (see ``ldm.checkpoint``).

Configs use the original's YAML schema (``model.params``); three optional keys replace sizes the
original hard-codes: ``first_stage_config``, ``spatial_volume_config`` and ``clip_config``.
"""
import math
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

import torch
import yaml
from torch import nn

from ldm.modules.autoencoder import AutoencoderKL
from ldm.modules.clip import VIT_L_14, FrozenCLIPImageEmbedder
from ldm.modules.unet import DepthWiseAttention, timestep_embedding
from ldm.modules.volume import SpatialVolumeNet
from utils.cameras import syncdreamer_cameras
from utils.errors import UserError

FIRST_STAGE_SCALE_FACTOR = 0.18215
NUM_TIMESTEPS = 1000
LINEAR_START, LINEAR_END = 0.00085, 0.0120
TARGET_ELEVATION_DEG = 30.0  # every generated view looks down at 30 degrees
TIME_EMBED_DIM = 256
VIEWPOINT_DIM = 4

# the original hard-codes these (full-size) values; configs may override them
DEFAULT_FIRST_STAGE = dict(embed_dim=4, double_z=True, z_channels=4, in_channels=3, out_ch=3, ch=128,
                           ch_mult=[1, 2, 4, 4], num_res_blocks=2, attn_resolutions=[], dropout=0.0)
DEFAULT_SPATIAL_VOLUME = dict(frustum_volume_depth=48, spatial_volume_size=32, spatial_volume_length=0.5,
                              frustum_volume_length=0.86603, spatial_dims=[64, 128, 256, 512],
                              frustum_in_dim=64, frustum_dims=[64, 128, 256, 512])

# keys of the original's model.params that only training (or the original's training-time sampler)
# reads; accepted so the original's config files load, and ignored
TRAINING_ONLY_KEYS = {"cfg_scale", "output_num", "batch_view_num", "finetune_unet", "finetune_projection",
                      "drop_conditions", "drop_scheme", "scheduler_config", "sample_type", "sample_steps",
                      # the OpenAI CLIP file only seeds weights that the SyncDreamer checkpoint overwrites
                      "clip_image_encoder_path"}
MODEL_KEYS = {"view_num", "image_size", "unet_config", "first_stage_config", "spatial_volume_config", "clip_config"}
UNET_KEYS = {"volume_dims", "in_channels", "out_channels", "model_channels", "attention_resolutions",
             "num_res_blocks", "channel_mult", "num_heads", "transformer_depth", "context_dim", "dropout"}
UNET_REQUIRED_KEYS = UNET_KEYS - {"num_heads", "transformer_depth", "dropout"}
# DepthWiseAttention options of the original that do not change inference
UNET_IGNORED_KEYS = {"image_size",  # the UNet works at any size
                     "use_checkpoint",  # gradient checkpointing, training only
                     "legacy",  # only changes head sizes of non-transformer attention
                     "use_spatial_transformer"}  # always true for SyncDreamer (checked)


def load_config(path: Union[str, Path]) -> dict:
    """Read a SyncDreamer YAML config (the original's schema) into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config {path} not found; use configs/syncdreamer.yaml (or configs/tiny.yaml for tests)")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UserError(f"config {path} is not valid YAML: {str(err).splitlines()[0]}") from err
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict) or not isinstance(
            cfg["model"].get("params"), dict):
        raise UserError(f"config {path} has no model.params section; start from configs/syncdreamer.yaml")
    return cfg


def _check_keys(section: dict, allowed: set, where: str, required: set = frozenset()) -> None:
    if not isinstance(section, dict):
        raise UserError(f"config: {where} must be a mapping of keys to values")
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise UserError(f"config: unknown key(s) {', '.join(unknown)} in {where}; "
                        f"allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(section))
    if missing:
        raise UserError(f"config: {where} lacks {', '.join(missing)}; see configs/syncdreamer.yaml")


def model_kwargs_from_config(cfg: dict) -> dict:
    """The :class:`SyncMultiviewDiffusion` arguments described by a config dict (validated)."""
    params = cfg["model"]["params"]
    _check_keys(params, MODEL_KEYS | TRAINING_ONLY_KEYS, "model.params", {"view_num", "image_size", "unet_config"})
    _check_keys(params["unet_config"], {"target", "params"}, "model.params.unet_config", {"params"})
    unet = params["unet_config"]["params"]
    _check_keys(unet, UNET_KEYS | UNET_IGNORED_KEYS, "model.params.unet_config.params", UNET_REQUIRED_KEYS)
    if not unet.get("use_spatial_transformer", True):
        raise UserError("config: unet_config.params.use_spatial_transformer must be true (SyncDreamer's UNet)")
    sub_configs = {"first_stage_config": set(DEFAULT_FIRST_STAGE) | {"resolution"},
                   "spatial_volume_config": set(DEFAULT_SPATIAL_VOLUME) | {"input_image_size"},
                   "clip_config": set(VIT_L_14)}
    for key, allowed in sub_configs.items():
        _check_keys(params.get(key) or {}, allowed, f"model.params.{key}")
    image_size = params["image_size"]
    if image_size % 8:
        raise UserError(f"config: model.params.image_size {image_size} must be a multiple of 8")
    volume_size = (params.get("spatial_volume_config") or {}).get("input_image_size", image_size)
    if volume_size != image_size:
        raise UserError(f"config: spatial_volume_config.input_image_size {volume_size} must equal "
                        f"model.params.image_size {image_size}")
    return dict(view_num=params["view_num"], image_size=image_size,
                unet_config={k: v for k, v in unet.items() if k not in UNET_IGNORED_KEYS},
                **{key: params.get(key) for key in sub_configs})


def build_model(cfg: dict, device: Union[str, torch.device] = "cpu",
                dtype: torch.dtype = torch.float32) -> "SyncMultiviewDiffusion":
    """Build the model a config describes, directly on ``device``, in eval mode without gradients.

    Weights are the constructors' random init: load a checkpoint (``ldm.checkpoint.load_checkpoint``)
    or call ``ldm.checkpoint.randomize_weights``. ``dtype`` applies to the networks (the schedule and
    camera buffers stay float32); run a model built with a half dtype under ``torch.autocast`` of
    that dtype. ``device="meta"`` builds shapes only (fast, no memory).
    """
    kwargs = model_kwargs_from_config(cfg)
    with torch.device(device):
        model = SyncMultiviewDiffusion(**kwargs)
    for module in model.children():
        module.to(dtype=dtype)
    return model.eval().requires_grad_(False)


class UNetWrapper(nn.Module):
    """Holds the UNet as ``diffusion_model`` (the checkpoint's key prefix) and assembles its input."""

    def __init__(self, unet_config: dict):
        super().__init__()
        self.diffusion_model = DepthWiseAttention(**unet_config)

    def forward(self, x: torch.Tensor, t: torch.Tensor, clip_embed: torch.Tensor, volume_feats: Dict[int, torch.Tensor],
                x_concat: torch.Tensor) -> torch.Tensor:
        """x (B,4,h,w) noisy latents, t (B,), clip_embed (B,M,768), volume_feats {w: (B,d,D,w,w)},
        x_concat (B,4,h,w) input-view latent (scaled) -> predicted noise (B,4,h,w).

        The concatenated latent is divided by the VAE scale factor again, as in the original (which
        inherits this from zero123), so the UNet sees the unscaled input latent.
        """
        x = torch.cat([x, x_concat / FIRST_STAGE_SCALE_FACTOR], 1)
        return self.diffusion_model(x, t, clip_embed, source_dict=volume_feats)


class SyncMultiviewDiffusion(nn.Module):
    """SyncDreamer: generates ``view_num`` views (fixed cameras at 30 degrees elevation) of the object
    in an input image of ``image_size`` pixels.

    Submodules (checkpoint prefixes): ``time_embed``, ``first_stage_model`` (VAE),
    ``clip_image_encoder``, ``cc_projection``, ``spatial_volume``, ``model`` (UNetWrapper). Buffers:
    the DDPM schedule (1000 steps, scaled-linear betas) and the cameras ``poses`` (V,3,4),
    ``Ks`` (V,3,3) at image_size, ``azimuth`` (V,) wrapped to [-pi, pi).
    """

    def __init__(self, view_num: int, image_size: int, unet_config: dict, first_stage_config: dict = None,
                 spatial_volume_config: dict = None, clip_config: dict = None):
        super().__init__()
        self.view_num = view_num
        self.image_size = image_size
        self.latent_size = image_size // 8
        self.viewpoint_dim = VIEWPOINT_DIM
        self.time_embed_dim = TIME_EMBED_DIM
        self.first_stage_scale_factor = FIRST_STAGE_SCALE_FACTOR
        self.num_timesteps = NUM_TIMESTEPS

        self.time_embed = nn.Sequential(
            nn.Linear(TIME_EMBED_DIM, TIME_EMBED_DIM),
            nn.SiLU(True),
            nn.Linear(TIME_EMBED_DIM, TIME_EMBED_DIM),
        )
        self.first_stage_model = AutoencoderKL(
            **DEFAULT_FIRST_STAGE | {"resolution": image_size} | (first_stage_config or {}))
        self._register_schedule()
        self._register_cameras()
        self.clip_image_encoder = FrozenCLIPImageEmbedder(clip_config)
        context_dim = self.clip_image_encoder.model.visual.output_dim
        self.cc_projection = nn.Linear(context_dim + VIEWPOINT_DIM, context_dim)
        # identity on the CLIP part, as the original initialises it (the checkpoint overwrites it)
        nn.init.eye_(self.cc_projection.weight[:, :context_dim])
        nn.init.zeros_(self.cc_projection.bias)

        volume = DEFAULT_SPATIAL_VOLUME | {"input_image_size": image_size} | (spatial_volume_config or {})
        if volume.pop("frustum_in_dim") != volume["spatial_dims"][0]:
            raise ValueError("spatial_volume_config: frustum_in_dim must equal spatial_dims[0]")
        self.spatial_volume = SpatialVolumeNet(TIME_EMBED_DIM, VIEWPOINT_DIM, view_num, **volume)
        self.model = UNetWrapper(unet_config)

    def _register_schedule(self) -> None:
        betas = torch.linspace(LINEAR_START ** 0.5, LINEAR_END ** 0.5, NUM_TIMESTEPS, dtype=torch.float32) ** 2
        alphas = 1.0 - betas
        alphas_cumprod = torch.cumprod(alphas, dim=0)
        # the original mixes float32 and a float64 "1": the posterior terms come out in float64
        alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]], 0)
        posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
        posterior_log_variance_clipped = torch.log(torch.clamp(posterior_variance, min=1e-20)).clamp(min=-10)
        self.register_buffer("betas", betas.float())
        self.register_buffer("alphas", alphas.float())
        self.register_buffer("alphas_cumprod", alphas_cumprod.float())
        self.register_buffer("sqrt_alphas_cumprod", torch.sqrt(alphas_cumprod).float())
        self.register_buffer("sqrt_one_minus_alphas_cumprod", torch.sqrt(1 - alphas_cumprod).float())
        self.register_buffer("posterior_variance", posterior_variance.float())
        self.register_buffer("posterior_log_variance_clipped", posterior_log_variance_clipped.float())

    def _register_cameras(self) -> None:
        cameras = syncdreamer_cameras(self.view_num, TARGET_ELEVATION_DEG, image_size=self.image_size)
        azimuths = (cameras["azimuths"] + math.pi) % (2 * math.pi) - math.pi  # view 0 has azimuth 0
        self.register_buffer("poses", torch.tensor(cameras["poses"], dtype=torch.float32))
        self.register_buffer("Ks", torch.tensor(cameras["K"], dtype=torch.float32).expand(self.view_num, 3, 3).clone())
        self.register_buffer("azimuth", torch.tensor(azimuths, dtype=torch.float32))

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def embed_time(self, t: torch.Tensor) -> torch.Tensor:
        """Timesteps (B,) -> (B,256): sinusoidal embedding then Linear-SiLU-Linear."""
        return self.time_embed(timestep_embedding(t, self.time_embed_dim))

    def get_viewpoint_embedding(self, batch_size: int, elevation_ref: torch.Tensor) -> torch.Tensor:
        """Input elevations (B,) or (B,1) in radians -> (B,V,4): per target view
        [elevation - 30 deg, sin(d_azimuth), cos(d_azimuth), 0], d_azimuth relative to view 0."""
        elevation_ref = elevation_ref.reshape(batch_size)
        # zero123's convention (negated elevations), kept for identical float rounding
        d_e = -math.radians(TARGET_ELEVATION_DEG) - (-elevation_ref)  # B
        d_a = self.azimuth - self.azimuth[0]  # V
        d_e = d_e[:, None].expand(batch_size, self.view_num)
        d_a = d_a[None].expand(batch_size, self.view_num)
        return torch.stack([d_e, torch.sin(d_a), torch.cos(d_a), torch.zeros_like(d_a)], -1)

    @torch.no_grad()
    def encode_first_stage(self, x: torch.Tensor, sample: bool = True) -> torch.Tensor:
        """Images (B,3,H,W) in [-1,1] -> scaled latents (B,4,H/8,W/8): a posterior sample (one
        ``torch.randn`` from the global CPU generator) or its mode, times 0.18215."""
        posterior = self.first_stage_model.encode(x)
        z = posterior.sample() if sample else posterior.mode()
        return z * self.first_stage_scale_factor

    @torch.no_grad()
    def decode_first_stage(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B,4,h,w) -> images (B,3,8h,8w), roughly [-1,1], not clamped."""
        return self.first_stage_model.decode(1.0 / self.first_stage_scale_factor * z)

    @torch.no_grad()
    def prepare(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the input frames.

        batch: ``input_image`` (F,H,W,3) in [-1,1], ``input_elevation`` (F,1) in radians.
        Returns clip_embed (F,1,768), x_input (F,4,H/8,W/8) = VAE posterior sample * 0.18215, and
        elevation (F,). Draws exactly one ``torch.randn`` (F,4,H/8,W/8) from the CPU generator.
        """
        vae_dtype = self.first_stage_model.quant_conv.weight.dtype
        image = batch["input_image"].permute(0, 3, 1, 2).to(device=self.device, dtype=vae_dtype)
        elevation = batch["input_elevation"][:, 0].to(self.device)
        x_input = self.encode_first_stage(image, sample=True)
        clip_embed = self.clip_image_encoder.encode(image)
        return clip_embed, x_input, elevation

    def get_target_view_feats(self, x_input: torch.Tensor, spatial_volume: torch.Tensor, clip_embed: torch.Tensor,
                              t_embed: torch.Tensor, v_embed: torch.Tensor, target_indices: torch.Tensor
                              ) -> Tuple[torch.Tensor, Dict[int, torch.Tensor], torch.Tensor]:
        """Per-target-view conditions for the UNet.

        x_input (B,4,h,w), spatial_volume (B,C,V,V,V), clip_embed (B,M,768), t_embed (B,256),
        v_embed (B,N,4), target_indices (B,TN) -> clip_embed (B*TN,M,768) after cc_projection,
        volume_feats {w: (B*TN,d,D,w,w)}, x_concat (B*TN,4,h,w); rows frame-major, target-minor.
        """
        B, TN = target_indices.shape
        volume_feats, _ = self.spatial_volume.construct_view_frustum_volume(
            spatial_volume, t_embed, v_embed, self.poses, self.Ks, target_indices)
        v_views = v_embed[torch.arange(B, device=v_embed.device)[:, None], target_indices].reshape(B * TN, 1, -1)
        clip_views = clip_embed.repeat_interleave(TN, dim=0)  # B*TN,M,768
        v_views = v_views.expand(B * TN, clip_views.shape[1], v_views.shape[-1]).to(clip_views.dtype)
        clip_views = self.cc_projection(torch.cat([clip_views, v_views], -1))
        x_concat = x_input.repeat_interleave(TN, dim=0)
        return clip_views, volume_feats, x_concat

    def sample(self, sampler, batch: Dict[str, torch.Tensor], cfg_scale: Union[float, Sequence[float]],
               batch_view_num: int, smooth_filter: bool = False, is_cyc: int = 0) -> torch.Tensor:
        """Generate all views of every frame in ``batch`` with ``sampler`` (see ``ldm.models.sampler``)."""
        return sampler.sample(self, batch, cfg_scale, batch_view_num, smooth_filter=smooth_filter, is_cyc=is_cyc)
