"""evaluate.py: the official layout, PSNR/SSIM against scikit-image, the pinned defaults against the
official computation, the JSON/Markdown outputs, resuming, and one-line errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from evaluation.layout import composite_on_white, load_view, pair_layout
from evaluation.metrics import psnr, ssim
from evaluation.pipeline import EvalOptions, WeightPaths, evaluate
from evaluation.protocol import IMAGE_SIZE
from utils.errors import UserError

SIZE = 24


def _noisy_pair(seed: int, frames: int = 2, size: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish ground truth on white with a black pixel, and a noisy copy."""
    rng = np.random.default_rng(seed)
    gt = np.full((frames, size, size, 3), 255, np.uint8)
    gt[:, 8:30, 10:32] = rng.integers(0, 200, (frames, 22, 22, 3), dtype=np.uint8)
    gt[:, 0, 0] = 0
    pred = np.clip(gt.astype(int) + rng.integers(-25, 26, gt.shape), 0, 255).astype(np.uint8)
    return pred, gt


def test_psnr_and_ssim_equal_scikit_image():
    pred, gt = _noisy_pair(0)
    expected_psnr = [peak_signal_noise_ratio(g, p, data_range=255) for p, g in zip(pred, gt)]
    expected_ssim = [structural_similarity(p, g, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=255, channel_axis=2) for p, g in zip(pred, gt)]
    np.testing.assert_allclose(psnr(pred, gt), expected_psnr, rtol=1e-10)
    # float32 as the official torchmetrics call: about 1e-5 from scikit-image's float64
    np.testing.assert_allclose(ssim(pred, gt), expected_ssim, atol=3e-5)


def _official_psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """torchmetrics.functional.peak_signal_noise_ratio with its defaults: data_range = target's max - min."""
    data_range = target.max() - target.min()
    mse = ((pred - target) ** 2).sum() / target.numel()
    return float(10 * torch.log10(data_range**2 / mse))


def test_pinned_data_range_equals_official_on_white_background_rgb():
    pred, gt = _noisy_pair(1, frames=1)
    official = _official_psnr(torch.from_numpy(pred[0]).float(), torch.from_numpy(gt[0]).float())
    assert psnr(pred, gt)[0] == pytest.approx(official, rel=1e-5)


def test_rgba_is_scored_as_its_white_composite(tmp_path):
    rng = np.random.default_rng(2)
    rgba = rng.integers(0, 256, (SIZE, SIZE, 4), dtype=np.uint8)
    rgba[:4, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(composite_on_white(rgba)).save(tmp_path / "rgb.png")
    a, b = load_view((tmp_path / "rgba.png",)), load_view((tmp_path / "rgb.png",))
    assert a.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    np.testing.assert_array_equal(a, b)
    assert (a[0, :20] == 255).all()  # transparent rows became white, not the hidden colour


def write_layout(root, objects, frames=3, views=4, seed=0, size=SIZE, noise=0):
    """ROOT/<object>/eval_v/{frame}.png: a coloured square on white, optionally with noise."""
    rng = np.random.default_rng(seed)
    for o, obj in enumerate(objects):
        for v in range(views):
            for f in range(frames):
                image = np.full((size, size, 3), 255, np.uint8)
                image[4 + f: 16 + f, 5 + v: 18 + v] = (40 * o, 60 * v, 200 - 30 * f)
                if noise:
                    image = np.clip(image.astype(int) + rng.integers(-noise, noise + 1, image.shape), 0, 255).astype(np.uint8)
                (root / obj / f"eval_{v}").mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(root / obj / f"eval_{v}" / f"{f}.png")
    return root


@pytest.fixture
def layouts(tmp_path):
    objects = ["skull", "trump"]
    gt = write_layout(tmp_path / "gt", objects)
    pred = write_layout(tmp_path / "pred", objects, seed=1, noise=30)
    return gt, pred


def _expected_object_psnr(gt, pred, obj, frames=3):
    values = []
    for v in range(4):
        for f in range(frames):
            g, p = (np.asarray(Image.open(r / obj / f"eval_{v}" / f"{f}.png").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BICUBIC))
                    for r in (gt, pred))
            values.append(peak_signal_noise_ratio(g, p, data_range=255))
    return float(np.mean(values))


def test_cli_writes_the_official_json_details_and_markdown(layouts, tmp_path, repo_root):
    gt, pred = layouts
    out = tmp_path / "res" / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "--gt_root", str(gt), "--pred_root", str(pred), "--metrics", "psnr", "ssim",
         "--output_file", str(out), "--device", "cpu"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    assert list(table) == ["psnr", "ssim"]
    assert list(table["psnr"]) == ["skull", "trump", "average"]
    for obj in ("skull", "trump"):
        assert table["psnr"][obj] == pytest.approx(_expected_object_psnr(gt, pred, obj), rel=1e-9)
    assert table["psnr"]["average"] == pytest.approx((table["psnr"]["skull"] + table["psnr"]["trump"]) / 2)
    details = json.loads((out.parent / "metrics_details.json").read_text())
    frame = details["objects"]["trump"]["views"]["eval_2"]["frames"]["1"]
    assert set(frame) == {"psnr", "ssim"}
    markdown = (out.parent / "metrics.md").read_text()
    assert "| **average** |" in markdown and f"{table['psnr']['average']:.2f}" in markdown


def test_rerun_reuses_finished_objects_and_recomputes_changed_ones(layouts, tmp_path):
    gt, pred = layouts
    out, logs = tmp_path / "metrics.json", []
    options = EvalOptions(metrics=["psnr"])
    first = evaluate(gt, pred, out, options, torch.device("cpu"), log=logs.append)
    assert not any("reusing" in line for line in logs)
    logs.clear()
    evaluate(gt, pred, out, options, torch.device("cpu"), log=logs.append)
    assert sum("reusing" in line for line in logs) == 2
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(pred / "trump" / "eval_0" / "0.png")
    logs.clear()
    third = evaluate(gt, pred, out, options, torch.device("cpu"), log=logs.append)
    assert [line.split(":")[0] for line in logs if "reusing" in line] == ["skull"]
    assert third["psnr"]["trump"] < first["psnr"]["trump"]


def test_missing_view_is_one_line_naming_the_folder(layouts):
    gt, pred = layouts
    for path in (pred / "skull" / "eval_3").iterdir():
        path.unlink()
    (pred / "skull" / "eval_3").rmdir()
    with pytest.raises(UserError, match=r"missing view folder .*skull/eval_3"):
        pair_layout(gt, pred)


def test_mismatched_frame_count_is_one_line(layouts):
    gt, pred = layouts
    (pred / "trump" / "eval_1" / "2.png").unlink()
    with pytest.raises(UserError, match=r"trump/eval_1 has 2 frames .* has 3 \(missing 2\)"):
        pair_layout(gt, pred)


def test_missing_object_in_prediction_is_one_line(layouts):
    gt, pred = layouts
    (pred / "skull").rename(pred.parent / "elsewhere")
    with pytest.raises(UserError, match=r"no folder skull/"):
        pair_layout(gt, pred)


def test_missing_weights_exit_2_with_one_line_naming_file_and_source(layouts, tmp_path, repo_root):
    gt, pred = layouts
    missing = tmp_path / "nowhere" / "i3d_pretrained_400.pt"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "fvd",
         "--model_path", str(missing), "--output_file", str(tmp_path / "m.json"), "--device", "cpu"],
        cwd=repo_root, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "drive.google.com" in lines[0]
    assert not (tmp_path / "m.json").exists()


def test_unknown_metric_is_rejected(layouts, tmp_path):
    gt, pred = layouts
    with pytest.raises(UserError, match="--metrics fid"):
        evaluate(gt, pred, tmp_path / "m.json", EvalOptions(metrics=["fid"], weights=WeightPaths()), torch.device("cpu"))


def test_compare_prints_published_rows_with_sources_beside_ours(layouts, tmp_path):
    from evaluation.published import comparison_markdown, load_published

    published = load_published()
    assert all(row["source"] and row["protocol"] for row in published)
    table = {"lpips": {"a": 0.2, "average": 0.2}, "psnr": {"a": 20.0, "average": 20.0}}
    text = comparison_markdown(table, "ours", published)
    assert "| ours (this run) | 0.2000 |" in text
    assert "| Efficient4D (as published) | 0.1300 |" in text
    assert "PSNR" not in text and published[0]["source"] in text


def test_one_cli_run_computes_all_five_metrics_with_user_supplied_weights(tmp_path, repo_root, lpips_files, hf_clip_file, i3d_file):
    """The default --metrics (all five) in one run, each network from its published file layout."""
    gt = write_layout(tmp_path / "gt", ["skull"], frames=1)
    pred = write_layout(tmp_path / "pred", ["skull"], frames=1, seed=1, noise=30)
    out = tmp_path / "metrics.json"
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "--gt", str(gt), "--pred", str(pred), "--output_file", str(out), "--device", "cpu",
         "--lpips_vgg", str(lpips_files[1]), "--lpips_heads", str(lpips_files[2]), "--clip_model", str(hf_clip_file[1]),
         "--model_path", str(i3d_file[1])],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table = json.loads(out.read_text())
    assert set(table) == {"psnr", "ssim", "lpips", "clip", "fvd"}
    assert table["psnr"]["skull"] == pytest.approx(_expected_object_psnr(gt, pred, "skull", frames=1), rel=1e-9)
    assert 0 < table["lpips"]["average"] and 0 < table["clip"]["average"] < 1 and 0 < table["fvd"]["average"]
    details = json.loads((out.parent / "metrics_details.json").read_text())
    assert details["protocol"]["weights"] == {"lpips_vgg": str(lpips_files[1]), "lpips_heads": str(lpips_files[2]),
                                              "clip": str(hf_clip_file[1]), "i3d": str(i3d_file[1])}
    assert set(details["objects"]["skull"]["views"]["eval_3"]["frames"]["0"]) == {"psnr", "ssim", "lpips", "clip"}
    assert all(m in (out.parent / "metrics.md").read_text() for m in ("PSNR", "SSIM", "LPIPS", "CLIP", "FVD"))
