"""SyncDreamer's spatial volume: the noisy target views are encoded, unprojected into one V^3 feature
volume shared by all views and fused by a 3D UNet (``SpatialTime3DNet``); each target view then
samples a frustum volume (depth D) from it, refined by ``FrustumTV3DNet`` into a pyramid of features
that the UNet attends to depth-wise.

Geometry: the volume covers [-length, length]^3 of the world (z up); cameras are world-to-camera
``[R|t]`` poses with pinhole ``K`` given at ``input_image_size`` pixels, rescaled to the feature
resolution. Camera math runs in float32 even under autocast (half precision would shift the
projected pixels).
"""
from typing import Dict, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_ORIGIN_DEPTH = 1.5  # SyncDreamer renders its views 1.5 units from the object's centre


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(8, channels)


# ---------------------------------------------------------------------------------------------------
# projection helpers


def projection_matrix(Ks: torch.Tensor, poses: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B,3,3) intrinsics, (B,3,4) w2c poses -> (B,4,4) [diag(r,r,1) K [R|t]; 0 0 0 1] in float32,
    mapping world points to pixels of an image ``ratio`` times the size K was given for."""
    Ks, poses = Ks.float(), poses.float()
    scale = torch.tensor([ratio, ratio, 1.0], dtype=torch.float32, device=Ks.device)
    proj = (scale[None, :, None] * Ks) @ poses  # B,3,4
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float32, device=Ks.device).expand(proj.shape[0], 1, 4)
    return torch.cat([proj, bottom], 1)


def project_to_grid(points: torch.Tensor, proj: torch.Tensor, size: int) -> torch.Tensor:
    """Project world points (B,3,n) with (B,4,4) ``proj`` into ``grid_sample`` coordinates (B,n,2) of
    a size x size image (align_corners=True). Depths below 1e-4 (behind the camera) are clamped to 1e-4."""
    pixels = proj[:, :3, :3] @ points + proj[:, :3, 3:]  # B,3,n
    depth = pixels[:, 2:].clamp(min=1e-4)
    xy = pixels[:, :2] / depth
    return (xy / ((size - 1) / 2) - 1).permute(0, 2, 1)


def volume_vertices(size: int, length: float, device: torch.device) -> torch.Tensor:
    """The (3,V,V,V) world coordinates of a V^3 grid over [-length, length]^3, indexed [z][y][x];
    channel 0 is x (the last index), channel 2 is z."""
    axis = torch.linspace(-length, length, size, dtype=torch.float32, device=device)
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z], 0)


def frustum_points(depth_size: int, volume_size: int, input_image_size: int, poses: torch.Tensor, Ks: torch.Tensor,
                   near: float, far: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """World points of each view's frustum: a volume_size^2 grid of pixel centres (0..S-1 at the
    volume resolution) times ``depth_size`` depths linspace(near, far).

    poses (B,3,4), Ks (B,3,3) -> xyz (B,3,D,S,S), depth (B,1,D,S,S).
    """
    B, D, S = poses.shape[0], depth_size, volume_size
    device = poses.device
    near_t = torch.full((), near, dtype=torch.float32, device=device)
    far_t = torch.full((), far, dtype=torch.float32, device=device)
    depth = torch.linspace(0, 1, D, dtype=torch.float32, device=device) * (far_t - near_t) + near_t  # D
    depth = depth.view(1, 1, D, 1).expand(B, 1, D, S * S)
    coords = torch.arange(S, dtype=torch.float32, device=device)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    pixels = torch.stack([x.reshape(-1), y.reshape(-1), torch.ones(S * S, device=device)], 0)  # 3,S*S
    rays = pixels[None, :, None, :] * depth  # B,3,D,S*S
    inverse = torch.inverse(projection_matrix(Ks, poses, S / input_image_size))
    xyz = inverse[:, :3, :3] @ rays.reshape(B, 3, D * S * S) + inverse[:, :3, 3:]
    return xyz.view(B, 3, D, S, S), depth.reshape(B, 1, D, S, S)


# ---------------------------------------------------------------------------------------------------
# networks


class Image2DResBlockWithTV(nn.Module):
    """2D residual block conditioned on time and viewpoint embeddings (B,t,1,1), (B,v,1,1)."""

    def __init__(self, dim: int, tdim: int, vdim: int):
        super().__init__()
        self.time_embed = nn.Conv2d(tdim, dim, 1, 1)
        self.view_embed = nn.Conv2d(vdim, dim, 1, 1)
        self.conv = nn.Sequential(
            _norm(dim), nn.SiLU(True), nn.Conv2d(dim, dim, 3, 1, 1),
            _norm(dim), nn.SiLU(True), nn.Conv2d(dim, dim, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x + self.time_embed(t) + self.view_embed(v))


class NoisyTargetViewEncoder(nn.Module):
    """Per-view 2D encoder of a noisy latent: (B,4,H,W), t (B,t_dim), v (B,v_dim) -> (B,output_dim,H,W)."""

    def __init__(self, time_embed_dim: int, viewpoint_dim: int, run_dim: int = 16, output_dim: int = 8):
        super().__init__()
        self.init_conv = nn.Conv2d(4, run_dim, 3, 1, 1)
        self.out_conv0 = Image2DResBlockWithTV(run_dim, time_embed_dim, viewpoint_dim)
        self.out_conv1 = Image2DResBlockWithTV(run_dim, time_embed_dim, viewpoint_dim)
        self.out_conv2 = Image2DResBlockWithTV(run_dim, time_embed_dim, viewpoint_dim)
        self.final_out = nn.Sequential(_norm(run_dim), nn.SiLU(True), nn.Conv2d(run_dim, output_dim, 3, 1, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t = t[:, :, None, None]
        v = v[:, :, None, None]
        x = self.init_conv(x)
        x = self.out_conv0(x, t, v)
        x = self.out_conv1(x, t, v)
        x = self.out_conv2(x, t, v)
        return self.final_out(x)


class SpatialTimeBlock(nn.Module):
    """x + time -> GroupNorm -> SiLU -> 3D conv (stride 1 or 2)."""

    def __init__(self, x_in_dim: int, t_in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.t_conv = nn.Conv3d(t_in_dim, x_in_dim, 1, 1)
        self.bn = _norm(x_in_dim)
        self.silu = nn.SiLU(True)
        self.conv = nn.Conv3d(x_in_dim, out_dim, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(self.silu(self.bn(x + self.t_conv(t))))


class SpatialUpTimeBlock(nn.Module):
    """x + time -> GroupNorm -> SiLU -> transposed 3D conv doubling the resolution."""

    def __init__(self, x_in_dim: int, t_in_dim: int, out_dim: int):
        super().__init__()
        self.t_conv = nn.Conv3d(t_in_dim, x_in_dim, 1, 1)
        self.norm = _norm(x_in_dim)
        self.silu = nn.SiLU(True)
        self.conv = nn.ConvTranspose3d(x_in_dim, out_dim, kernel_size=3, padding=1, output_padding=1, stride=2)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.conv(self.silu(self.norm(x + self.t_conv(t))))


class SpatialTime3DNet(nn.Module):
    """Time-conditioned 3D UNet fusing the unprojected views: (B,input_dim,V,V,V), t (B,t) -> (B,d0,V,V,V)."""

    def __init__(self, time_dim: int = 256, input_dim: int = 128, dims: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        d0, d1, d2, d3 = dims
        dt = time_dim
        self.init_conv = nn.Conv3d(input_dim, d0, 3, 1, 1)
        self.conv0 = SpatialTimeBlock(d0, dt, d0, stride=1)
        self.conv1 = SpatialTimeBlock(d0, dt, d1, stride=2)
        self.conv2_0 = SpatialTimeBlock(d1, dt, d1, stride=1)
        self.conv2_1 = SpatialTimeBlock(d1, dt, d1, stride=1)
        self.conv3 = SpatialTimeBlock(d1, dt, d2, stride=2)
        self.conv4_0 = SpatialTimeBlock(d2, dt, d2, stride=1)
        self.conv4_1 = SpatialTimeBlock(d2, dt, d2, stride=1)
        self.conv5 = SpatialTimeBlock(d2, dt, d3, stride=2)
        self.conv6_0 = SpatialTimeBlock(d3, dt, d3, stride=1)
        self.conv6_1 = SpatialTimeBlock(d3, dt, d3, stride=1)
        self.conv7 = SpatialUpTimeBlock(d3, dt, d2)
        self.conv8 = SpatialUpTimeBlock(d2, dt, d1)
        self.conv9 = SpatialUpTimeBlock(d1, dt, d0)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t[:, :, None, None, None]
        conv0 = self.conv0(self.init_conv(x), t)
        conv2 = self.conv2_1(self.conv2_0(self.conv1(conv0, t), t), t)
        conv4 = self.conv4_1(self.conv4_0(self.conv3(conv2, t), t), t)
        x = self.conv6_1(self.conv6_0(self.conv5(conv4, t), t), t)
        x = conv4 + self.conv7(x, t)
        x = conv2 + self.conv8(x, t)
        return conv0 + self.conv9(x, t)


class FrustumTVBlock(nn.Module):
    """x + time + viewpoint -> GroupNorm -> SiLU -> 3D conv (stride 1 or 2)."""

    def __init__(self, x_dim: int, t_dim: int, v_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.t_conv = nn.Conv3d(t_dim, x_dim, 1, 1)
        self.v_conv = nn.Conv3d(v_dim, x_dim, 1, 1)
        self.bn = _norm(x_dim)
        self.silu = nn.SiLU(True)
        self.conv = nn.Conv3d(x_dim, out_dim, 3, stride=stride, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.conv(self.silu(self.bn(x + self.t_conv(t) + self.v_conv(v))))


class FrustumTVUpBlock(nn.Module):
    """x + time + viewpoint -> GroupNorm -> SiLU -> transposed 3D conv doubling the resolution."""

    def __init__(self, x_dim: int, t_dim: int, v_dim: int, out_dim: int):
        super().__init__()
        self.t_conv = nn.Conv3d(t_dim, x_dim, 1, 1)
        self.v_conv = nn.Conv3d(v_dim, x_dim, 1, 1)
        self.norm = _norm(x_dim)
        self.silu = nn.SiLU(True)
        self.conv = nn.ConvTranspose3d(x_dim, out_dim, kernel_size=3, padding=1, output_padding=1, stride=2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.conv(self.silu(self.norm(x + self.t_conv(t) + self.v_conv(v))))


class FrustumTV3DNet(nn.Module):
    """3D UNet over a view frustum: (B,in_dim,D,W,W), t (B,t), v (B,v) ->
    {W: (B,d0,D,W,W), W/2: (B,d1,..), W/4: (B,d2,..), W/8: (B,d3,..)} keyed by spatial width."""

    def __init__(self, in_dim: int, t_dim: int, v_dim: int, dims: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        self.conv0 = nn.Conv3d(in_dim, dims[0], 3, 1, 1)
        self.conv1 = FrustumTVBlock(dims[0], t_dim, v_dim, dims[1], 2)
        self.conv2 = FrustumTVBlock(dims[1], t_dim, v_dim, dims[1], 1)
        self.conv3 = FrustumTVBlock(dims[1], t_dim, v_dim, dims[2], 2)
        self.conv4 = FrustumTVBlock(dims[2], t_dim, v_dim, dims[2], 1)
        self.conv5 = FrustumTVBlock(dims[2], t_dim, v_dim, dims[3], 2)
        self.conv6 = FrustumTVBlock(dims[3], t_dim, v_dim, dims[3], 1)
        self.up0 = FrustumTVUpBlock(dims[3], t_dim, v_dim, dims[2])
        self.up1 = FrustumTVUpBlock(dims[2], t_dim, v_dim, dims[1])
        self.up2 = FrustumTVUpBlock(dims[1], t_dim, v_dim, dims[0])

    def forward(self, x: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> Dict[int, torch.Tensor]:
        t = t[:, :, None, None, None]
        v = v[:, :, None, None, None]
        w = x.shape[-1]
        x0 = self.conv0(x)
        x1 = self.conv2(self.conv1(x0, t, v), t, v)
        x2 = self.conv4(self.conv3(x1, t, v), t, v)
        x3 = self.conv6(self.conv5(x2, t, v), t, v)
        x2 = self.up0(x3, t, v) + x2
        x1 = self.up1(x2, t, v) + x1
        x0 = self.up2(x1, t, v) + x0
        return {w: x0, w // 2: x1, w // 4: x2, w // 8: x3}


class SpatialVolumeNet(nn.Module):
    """Builds the shared spatial volume from the noisy target views and the per-view frustum volumes.

    ``spatial_dims`` are the SpatialTime3DNet widths, ``frustum_dims`` the FrustumTV3DNet widths; its
    input width is ``spatial_dims[0]`` (the spatial volume's channels). The frustum grid has
    ``input_image_size // 8`` pixels per side (the latent resolution).
    """

    def __init__(self, time_dim: int, view_dim: int, view_num: int, input_image_size: int = 256,
                 frustum_volume_depth: int = 48, spatial_volume_size: int = 32, spatial_volume_length: float = 0.5,
                 frustum_volume_length: float = 0.86603,  # sqrt(3)/2: half the diagonal of the unit cube
                 spatial_dims: Sequence[int] = (64, 128, 256, 512), frustum_dims: Sequence[int] = (64, 128, 256, 512),
                 target_encoder_dim: int = 16):
        super().__init__()
        self.target_encoder = NoisyTargetViewEncoder(time_dim, view_dim, output_dim=target_encoder_dim)
        self.spatial_volume_feats = SpatialTime3DNet(time_dim=time_dim, input_dim=target_encoder_dim * view_num,
                                                     dims=spatial_dims)
        self.frustum_volume_feats = FrustumTV3DNet(spatial_dims[0], time_dim, view_dim, dims=frustum_dims)
        self.input_image_size = input_image_size
        self.spatial_volume_size = spatial_volume_size
        self.spatial_volume_length = spatial_volume_length
        self.frustum_volume_size = input_image_size // 8
        self.frustum_volume_depth = frustum_volume_depth
        self.frustum_volume_length = frustum_volume_length

    def construct_spatial_volume(self, x: torch.Tensor, t_embed: torch.Tensor, v_embed: torch.Tensor,
                                 target_poses: torch.Tensor, target_Ks: torch.Tensor) -> torch.Tensor:
        """x (B,N,4,H,W) noisy target latents, t_embed (B,t), v_embed (B,N,v), target_poses (N,3,4),
        target_Ks (N,3,3) -> spatial volume (B,d0,V,V,V)."""
        B, N, C, H, W = x.shape
        V = self.spatial_volume_size
        # all B*N views through the 2D encoder in one batch (frame-major, view-minor)
        t_views = t_embed[:, None].expand(B, N, t_embed.shape[-1]).reshape(B * N, -1)
        feats = self.target_encoder(x.reshape(B * N, C, H, W), t_views, v_embed.reshape(B * N, -1))
        feat_dim, feat_size = feats.shape[1], feats.shape[-1]

        verts = volume_vertices(V, self.spatial_volume_length, x.device).view(1, 3, V ** 3)
        proj = projection_matrix(target_Ks, target_poses, feat_size / self.input_image_size)  # N,4,4
        grid = project_to_grid(verts.expand(N, 3, V ** 3), proj, feat_size).view(1, N, V, V * V, 2)
        grid = grid.expand(B, N, V, V * V, 2).reshape(B * N, V, V * V, 2).to(feats.dtype)
        unprojected = F.grid_sample(feats, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        volume = unprojected.view(B, N * feat_dim, V, V, V)  # view-major channels
        return self.spatial_volume_feats(volume, t_embed)

    def construct_view_frustum_volume(self, spatial_volume: torch.Tensor, t_embed: torch.Tensor,
                                      v_embed: torch.Tensor, poses: torch.Tensor, Ks: torch.Tensor,
                                      target_indices: torch.Tensor) -> Tuple[Dict[int, torch.Tensor], torch.Tensor]:
        """spatial_volume (B,C,V,V,V), t_embed (B,t), v_embed (B,N,v), poses (N,3,4), Ks (N,3,3),
        target_indices (B,TN) -> ({width: (B*TN,d,D,w,w)}, depth (B*TN,1,D,S,S)); rows frame-major."""
        B, TN = target_indices.shape
        D, S = self.frustum_volume_depth, self.frustum_volume_size
        flat_indices = target_indices.reshape(B * TN)
        near = DEFAULT_ORIGIN_DEPTH - self.frustum_volume_length
        far = DEFAULT_ORIGIN_DEPTH + self.frustum_volume_length
        xyz, depth = frustum_points(D, S, self.input_image_size, poses[flat_indices], Ks[flat_indices], near, far)

        # the spatial volume spans [-length, length]: rescale to grid_sample's [-1, 1]
        grid = (xyz / self.spatial_volume_length).permute(0, 2, 3, 4, 1).to(spatial_volume.dtype)  # B*TN,D,S,S,3
        volumes = spatial_volume.repeat_interleave(TN, dim=0)
        frustum = F.grid_sample(volumes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

        v_views = v_embed[torch.arange(B, device=v_embed.device)[:, None], target_indices].reshape(B * TN, -1)
        t_views = t_embed.repeat_interleave(TN, dim=0)
        return self.frustum_volume_feats(frustum, t_views, v_views), depth.to(spatial_volume.dtype)
