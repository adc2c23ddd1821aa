"""--matting background against known masks: synthetic clips written as real mp4 and gif files.

A textured blob moves over (a) a plain backdrop, (b) a lightly noisy one, (c) a textured one (the
median backdrop; the blob crosses the frame). The matte must reach a mean IoU of 0.9 with the
true mask on each, through the whole stage (decoding, frame choice, matting, PNG output).
"""
import cv2
import numpy as np
import pytest

from prepare import background
from prepare.masks import fill_holes, hysteresis, track_object
from prepare.pipeline import prepare_video
from tools.synthetic import backdrop_video, write_video
from utils.images import read_rgba

FRAMES, CHOSEN, HEIGHT = 12, 8, 96
MIN_IOU = 0.9


@pytest.fixture(autouse=True)
def one_opencv_thread():
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    yield
    cv2.setNumThreads(threads)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def matte_file(tmp_path, suffix, backdrop, width=HEIGHT, **options):
    frames, masks = backdrop_video(FRAMES, HEIGHT, width, backdrop, seed=4)
    video = write_video(tmp_path / f"clip{suffix}", frames)
    checks = prepare_video(video, tmp_path / "out", num_frames=CHOSEN, matting="background", log=lambda _: None,
                           **options)
    alphas = [read_rgba(tmp_path / "out" / f"{c.index}.png")[..., 3] for c in checks]
    return [iou(a >= 128, masks[c.source_index]) for a, c in zip(alphas, checks)], checks


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@pytest.mark.parametrize("backdrop", ["plain", "noisy"])
def test_background_matting_finds_the_object_on_a_plain_or_noisy_backdrop(tmp_path, suffix, backdrop):
    ious, checks = matte_file(tmp_path, suffix, backdrop)
    assert [c.source_index for c in checks] == [0, 2, 3, 5, 6, 8, 9, 11]
    assert np.mean(ious) >= MIN_IOU, ious
    assert not any(c.problem for c in checks)


def test_median_backdrop_finds_an_object_crossing_a_textured_backdrop(tmp_path):
    frames, _ = backdrop_video(FRAMES, HEIGHT, 3 * HEIGHT, "textured", seed=4)
    assert background.choose_model(frames, "auto") == "median"  # the edge is not plain
    ious, _ = matte_file(tmp_path, ".mp4", "textured", width=3 * HEIGHT)
    assert np.mean(ious) >= MIN_IOU, ious


def test_border_backdrop_fails_where_the_backdrop_is_textured(tmp_path):
    """The check above is not trivially met: the wrong backdrop model gives a poor matte."""
    frames, masks = backdrop_video(FRAMES, HEIGHT, 3 * HEIGHT, "textured", seed=4)
    rgba = background.matte(frames, frames, "border", log=lambda _: None)
    assert np.mean([iou(a[..., 3] >= 128, m) for a, m in zip(rgba, masks)]) < 0.5


def test_grabcut_refinement_keeps_the_object(tmp_path):
    ious, _ = matte_file(tmp_path, ".mp4", "noisy", refine="grabcut")
    assert np.mean(ious) >= MIN_IOU, ious


def test_soft_edge_recomposes_the_filmed_frame():
    """Over the backdrop it was filmed on, the RGBA frame must give back the input: the solved
    alpha and object colour explain the mixed edge pixels better than a hard cut-out does."""
    frames, masks = backdrop_video(4, HEIGHT, HEIGHT, "plain", seed=4)
    rgba = background.matte(frames, frames, "border", log=lambda _: None)
    backdrop = frames[0, 0, 0].astype(np.float32)
    alpha = rgba[..., 3:].astype(np.float32) / 255
    soft = rgba[..., :3] * alpha + backdrop * (1 - alpha)
    hard = np.where(alpha >= 0.5, rgba[..., :3], backdrop)
    edge = (alpha[..., 0] > 0) & (alpha[..., 0] < 1)
    assert edge.sum() > 100  # a real soft edge, not a binary mask
    error_soft = np.abs(soft - frames)[edge].mean()
    error_hard = np.abs(hard - frames)[edge].mean()
    assert error_soft < 0.5 * error_hard, (error_soft, error_hard)


def test_hysteresis_keeps_faint_regions_only_through_a_confident_pixel():
    region = np.zeros((8, 8), bool)
    region[1:3, 1:3] = region[5:7, 5:7] = True
    seeds = np.zeros_like(region)
    seeds[1, 1] = True
    kept = hysteresis(region, seeds)
    assert kept[1:3, 1:3].all() and not kept[5:7, 5:7].any()


def test_small_holes_are_filled_and_large_openings_kept():
    mask = np.zeros((40, 40), bool)
    mask[5:35, 5:35] = True
    mask[8:10, 8:10] = False  # a speck of backdrop colour on the object
    mask[15:28, 15:28] = False  # a real opening (a handle)
    filled = fill_holes(mask, 0.05)
    assert filled[8:10, 8:10].all() and not filled[15:28, 15:28].any()


def test_tracking_follows_the_object_past_a_larger_distractor_and_drops_specks():
    masks = np.zeros((3, 40, 60), bool)
    for t in range(3):
        masks[t, 10:20, 5 + 2 * t:15 + 2 * t] = True  # the object, moving right
    masks[1, 5:35, 35:58] = True  # a larger blob for one frame (something passing by)
    masks[2, 30:32, 50:52] = True  # a speck
    kept = track_object(masks, 2)
    assert (kept[1] == (masks[1] & (np.arange(60) < 30))).all()
    assert kept[2].sum() == 100


def test_thin_legs_are_kept_and_the_gap_between_them_stays_open():
    """A table-like object at 400 px: a top and two 4-pixel legs around an opening of backdrop."""
    frames = np.full((2, 400, 400, 3), 215, np.uint8)
    legs = np.zeros((400, 400), bool)
    legs[200:300, 150:154] = legs[200:300, 250:254] = True
    frames[:, 150:200, 140:265] = frames[:, legs] = (90, 60, 40)
    alpha = background.matte(frames, frames, "border", log=lambda _: None)[..., 3]
    assert (alpha[:, legs] >= 128).mean() > 0.95
    assert (alpha[:, 205:300, 160:245] == 0).all()
