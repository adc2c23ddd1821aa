"""FVD: the Fréchet distance on known Gaussians, the single-video pitfall, the official preprocessing, I3D loading."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from evaluation.fvd import FVDMetric, fvd_from_features, frechet_distance, read_video
from evaluation.i3d import same_padding
from evaluation.layout import composite_on_white
from utils.errors import UserError


def test_frechet_distance_equal_covariances_is_squared_mean_distance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 6))
    sigma = a @ a.T + np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    assert frechet_distance(mu1, sigma, mu2, sigma) == pytest.approx(float(np.sum((mu1 - mu2) ** 2)), rel=1e-8)


def test_frechet_distance_of_diagonal_gaussians_has_its_closed_form():
    rng = np.random.default_rng(1)
    v1, v2 = rng.uniform(0.5, 3, 5), rng.uniform(0.5, 3, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-8)


def test_single_video_per_side_is_the_squared_feature_distance_not_nan():
    rng = np.random.default_rng(2)
    pred, gt = rng.normal(size=(1, 400)), rng.normal(size=(1, 400))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        assert np.isnan(np.cov(pred, rowvar=False)).all()  # the official script's covariance of one video
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and quietly: no "matrix is singular" from sqrtm
        assert fvd_from_features(pred, gt) == pytest.approx(float(np.sum((pred - gt) ** 2)), rel=1e-10)
    # one video against several: the other side's spread still counts
    many = rng.normal(size=(5, 400))
    assert fvd_from_features(pred, many) == pytest.approx(
        float(np.sum((pred[0] - many.mean(0)) ** 2) + np.trace(np.cov(many, rowvar=False))), rel=1e-10)


def test_several_videos_use_the_sample_covariance():
    rng = np.random.default_rng(3)
    pred, gt = rng.normal(size=(50, 3)), rng.normal(1.0, 2.0, size=(60, 3))
    expected = frechet_distance(pred.mean(0), np.cov(pred.T, ddof=1), gt.mean(0), np.cov(gt.T, ddof=1))
    assert fvd_from_features(pred, gt) == pytest.approx(expected, rel=1e-10)


def test_video_preprocessing_is_the_official_per_channel_float_resize(tmp_path):
    rng = np.random.default_rng(4)
    rgba = rng.integers(0, 256, (2, 40, 30, 4), dtype=np.uint8)
    paths_rgba, paths_rgb = [], []
    for i, frame in enumerate(rgba):
        Image.fromarray(frame).save(tmp_path / f"{i}.png")
        Image.fromarray(composite_on_white(frame)).save(tmp_path / f"white{i}.png")
        paths_rgba.append(tmp_path / f"{i}.png")
        paths_rgb.append(tmp_path / f"white{i}.png")
    # The official steps on white-background RGB: convert('RGB'), each channel as a float image, bicubic (3) to 224.
    frames = []
    for path in paths_rgb:
        rgb = np.array(Image.open(path).convert("RGB"))
        frames.append(np.concatenate([np.asarray(Image.fromarray(rgb[:, :, c].astype(np.float32)).resize((224, 224), resample=3))
                                      .reshape(224, 224, 1) for c in range(3)], axis=2))
    expected = torch.as_tensor(np.stack(frames)).float() / 127.5 - 1
    expected = expected.unsqueeze(0).permute(0, 4, 1, 2, 3)
    torch.testing.assert_close(read_video(tuple(paths_rgb)), expected, rtol=0, atol=0)
    torch.testing.assert_close(read_video(tuple(paths_rgba)), expected, rtol=0, atol=0)


@pytest.mark.parametrize("size,kernel,stride", [(7, 3, 2), (8, 3, 2), (9, 7, 2), (5, 2, 2), (4, 3, 1)])
def test_same_padding_gives_ceil_of_size_over_stride(size, kernel, stride):
    x = torch.ones(1, 1, size, size, size)
    out = torch.nn.functional.max_pool3d(same_padding(x, (kernel,) * 3, (stride,) * 3), kernel, stride)
    assert out.shape[2:] == ((size + stride - 1) // stride,) * 3


def _clip(folder, seed, frames=2):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for i in range(frames):
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return tuple(folder / f"{i}.png" for i in range(frames))


def test_fvd_metric_loads_the_file_and_scores_clips(i3d_file, tmp_path):
    network, path = i3d_file
    metric = FVDMetric.from_file(path, torch.device("cpu"))
    a, b = _clip(tmp_path / "a", 0), _clip(tmp_path / "b", 1)
    with torch.no_grad():
        fa, fb = network(read_video(a)).double().numpy(), network(read_video(b)).double().numpy()
    assert fa.shape == (1, 400)
    assert metric(a, a) == pytest.approx(0.0, abs=1e-9)
    assert metric(a, b) == pytest.approx(float(np.sum((fa - fb) ** 2)), rel=1e-5)
    assert metric(a, b) > 0


def test_i3d_file_with_wrong_keys_is_one_line(tmp_path):
    torch.save({"Conv3d_1a_7x7.conv3d.weight": torch.zeros(64, 3, 7, 7, 7)}, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"bad.pt does not hold I3D-400 \(InceptionI3d\) weights \(missing Conv3d_1a_7x7.bn.weight"):
        FVDMetric.from_file(tmp_path / "bad.pt", torch.device("cpu"))
