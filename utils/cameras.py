"""The fixed SyncDreamer camera rig, computed analytically (no pickle files).

World frame: z up; every camera sits on a sphere around the origin and looks at it.
Poses are world-to-camera ``[R|t]`` (x_cam = R x_world + t) in OpenCV camera axes
(x right, y down, z forward). View ``i`` has azimuth ``i * 2*pi / V``.
"""
import math

import numpy as np

REFERENCE_IMAGE_SIZE = 256
FOCAL_AT_256 = 280.0


def intrinsics(image_size: int = REFERENCE_IMAGE_SIZE) -> np.ndarray:
    """(3,3) pinhole K: f = 280 and c = 128 at 256 px, rows 0 and 1 scaled for other sizes."""
    r = image_size / REFERENCE_IMAGE_SIZE
    c = REFERENCE_IMAGE_SIZE / 2
    return np.array([[FOCAL_AT_256 * r, 0, c * r], [0, FOCAL_AT_256 * r, c * r], [0, 0, 1]], dtype=np.float64)


def look_at_w2c(center: np.ndarray, target: np.ndarray = np.zeros(3), up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """(3,4) world-to-camera [R|t] in OpenCV axes for a camera at ``center`` looking at ``target``."""
    forward = target - center
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return np.concatenate([rotation, (-rotation @ center)[:, None]], axis=1)


def syncdreamer_cameras(
    num_views: int = 16, elevation_deg: float = 30.0, distance: float = 1.5, image_size: int = REFERENCE_IMAGE_SIZE
) -> dict[str, np.ndarray]:
    """The rig SyncDreamer generates: ``K`` (3,3), ``poses`` (V,3,4) w2c, ``azimuths``/``elevations``/``distances`` (V,)."""
    azimuths = np.arange(num_views) * (2 * math.pi / num_views)
    elevation = math.radians(elevation_deg)
    centers = distance * np.stack(
        [np.cos(elevation) * np.cos(azimuths), np.cos(elevation) * np.sin(azimuths), np.full(num_views, np.sin(elevation))],
        axis=1,
    )
    return {
        "K": intrinsics(image_size),
        "poses": np.stack([look_at_w2c(c) for c in centers]),
        "azimuths": azimuths,
        "elevations": np.full(num_views, elevation),
        "distances": np.full(num_views, float(distance)),
    }


def w2c_to_c2w(pose: np.ndarray) -> np.ndarray:
    """(3,4) world-to-camera [R|t] -> (4,4) camera-to-world [[R^T, -R^T t], [0,0,0,1]]."""
    rotation, translation = pose[:, :3], pose[:, 3]
    c2w = np.eye(4)
    c2w[:3, :3] = rotation.T
    c2w[:3, 3] = -rotation.T @ translation
    return c2w


def original_transform_matrix(pose: np.ndarray) -> np.ndarray:
    """(3,4) w2c -> the (4,4) ``transform_matrix`` the original converter writes.

    Its rotation block is -R^T (a reflection, determinant -1) while the translation is the true
    camera centre; we keep it so datasets stay byte-compatible with the original's.
    """
    matrix = w2c_to_c2w(pose)
    matrix[:3, :3] *= -1
    return matrix


def c2w_from_original_transform(matrix: np.ndarray) -> np.ndarray:
    """Undo :func:`original_transform_matrix`: (4,4) original ``transform_matrix`` -> true (4,4) c2w (OpenCV axes)."""
    c2w = np.array(matrix, dtype=np.float64)
    c2w[:3, :3] *= -1
    return c2w
