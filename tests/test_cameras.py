import json

import numpy as np

from utils.cameras import (
    c2w_from_original_transform,
    intrinsics,
    original_transform_matrix,
    syncdreamer_cameras,
    w2c_to_c2w,
)


def test_rig_matches_reference_camera_pickle(reference_dir):
    ref = json.loads((reference_dir / "camera-16.json").read_text())
    cams = syncdreamer_cameras()
    np.testing.assert_allclose(cams["K"], ref["K"], atol=1e-4)
    np.testing.assert_allclose(cams["azimuths"], ref["azimuths"], atol=1e-4)
    np.testing.assert_allclose(cams["elevations"], ref["elevations"], atol=1e-4)
    np.testing.assert_allclose(cams["distances"], ref["distances"], atol=1e-4)
    np.testing.assert_allclose(cams["poses"], ref["poses"], atol=1e-4)


def test_camera_centres_match_reference(reference_dir):
    ref = json.loads((reference_dir / "camera-16.json").read_text())
    centres = np.stack([w2c_to_c2w(p)[:3, 3] for p in syncdreamer_cameras()["poses"]])
    np.testing.assert_allclose(centres, ref["derived_camera_centers_world"], atol=1e-4)


def test_cameras_look_at_origin_in_opencv_axes():
    for pose in syncdreamer_cameras()["poses"]:
        c2w = w2c_to_c2w(pose)
        forward = c2w[:3, 2]
        centre = c2w[:3, 3]
        np.testing.assert_allclose(forward, -centre / np.linalg.norm(centre), atol=1e-12)
        assert c2w[2, 1] < 0  # image "down" (+y) points to world -z
        assert np.isclose(np.linalg.det(c2w[:3, :3]), 1.0)


def test_intrinsics_scale_with_image_size():
    np.testing.assert_allclose(intrinsics(64), [[70, 0, 32], [0, 70, 32], [0, 0, 1]])


def test_original_transform_is_a_reflection_we_can_undo():
    pose = syncdreamer_cameras()["poses"][3]
    matrix = original_transform_matrix(pose)
    assert np.isclose(np.linalg.det(matrix[:3, :3]), -1.0)
    np.testing.assert_allclose(matrix[:3, 3], w2c_to_c2w(pose)[:3, 3])
    np.testing.assert_allclose(c2w_from_original_transform(matrix), w2c_to_c2w(pose), atol=1e-12)
