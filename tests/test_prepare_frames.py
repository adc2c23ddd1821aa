"""Stage 0's reading and frame choice: mp4, gif and frame folders; --num_frames, --fps, --start/--end."""
import numpy as np
import pytest
from PIL import Image

from prepare.frames import (Position, Source, choose_frames, fit_max_side, frame_span, open_source, parse_position,
                            read_frames)
from tools.synthetic import backdrop_video, write_video
from utils.errors import UserError

FPS = 10


@pytest.fixture(scope="module")
def clip():
    frames, _ = backdrop_video(12, 64, 96, "plain", seed=2)
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_video_files_give_every_frame_at_their_rate(tmp_path, clip, suffix):
    source = open_source(write_video(tmp_path / f"clip{suffix}", clip, fps=FPS))
    assert (source.num_frames, source.fps) == (12, FPS)
    frames = read_frames(source, [0, 5, 11])
    assert sorted(frames) == [0, 5, 11]
    for i, frame in frames.items():
        assert frame.shape == (64, 96, 4) and (frame[..., 3] == 255).all()
        # mp4 is lossy; the frame must still be the right one (frames differ by the object's motion)
        errors = [np.abs(frame[..., :3].astype(int) - other).mean() for other in clip]
        assert int(np.argmin(errors)) == i and errors[i] < 4


def test_folder_frames_come_in_numeric_order_with_their_alpha(tmp_path):
    for i in (10, 2, 1):
        Image.new("RGBA", (8, 6), (20 * i, 0, 0, 100)).save(tmp_path / f"{i}.png")
    Image.new("RGB", (8, 6), (65, 65, 65)).save(tmp_path / "3.jpg", quality=100)
    source = open_source(tmp_path)
    assert [p.name for p in source.files] == ["1.png", "2.png", "3.jpg", "10.png"]
    assert source.fps is None
    frames = read_frames(source, range(4))
    assert [int(frames[i][0, 0, 0]) // 10 for i in range(4)] == [2, 4, 6, 20]  # (JPEG is lossy)
    assert frames[0][0, 0, 3] == 100 and frames[2][0, 0, 3] == 255  # a JPG is opaque


def test_folder_frames_of_different_sizes_are_named(tmp_path):
    Image.new("RGB", (8, 6)).save(tmp_path / "0.png")
    Image.new("RGB", (8, 7)).save(tmp_path / "1.png")
    with pytest.raises(UserError, match=r"1\.png is 8x7 but .*0\.png is 8x6"):
        read_frames(open_source(tmp_path), [0, 1])


@pytest.mark.parametrize("text, expected", [("40", Position(40, False)), ("1.5s", Position(1.5, True)),
                                            ("2s", Position(2, True)), (".5s", Position(0.5, True))])
def test_positions_are_frames_or_seconds(text, expected):
    assert parse_position(text, "--start") == expected
    assert parse_position(None, "--start") is None


@pytest.mark.parametrize("text", ["1.5", "-3", "abc", "2m", ""])
def test_bad_positions_are_refused(text):
    with pytest.raises(UserError, match="--end must be a frame index"):
        parse_position(text, "--end")


VIDEO = Source(path=None, kind="video", num_frames=100, fps=25.0)


def test_span_in_seconds_and_frames_excludes_the_end():
    assert frame_span(VIDEO, Position(0.4, True), Position(2, True)) == range(10, 50)
    assert frame_span(VIDEO, Position(10, False), Position(50, False)) == range(10, 50)
    assert frame_span(VIDEO, None, Position(500, False)) == range(0, 100)


def test_empty_span_and_seconds_on_a_folder_are_refused():
    with pytest.raises(UserError, match="select no frame"):
        frame_span(VIDEO, Position(5, True), None)
    folder = Source(path="frames", kind="folder", num_frames=10, fps=None)
    with pytest.raises(UserError, match="frame indices"):
        frame_span(folder, Position(1, True), None)


def test_num_frames_are_evenly_spaced_with_first_and_last():
    assert choose_frames(VIDEO, range(10, 50), num_frames=5) == [10, 20, 30, 39, 49]
    assert choose_frames(VIDEO, range(0, 3), num_frames=3) == [0, 1, 2]


def test_fps_takes_one_frame_per_period():
    assert choose_frames(VIDEO, range(0, 25), fps=5) == [0, 5, 10, 15, 20]
    assert choose_frames(VIDEO, range(3, 13), fps=10) == [3, 5, 8, 11]  # every 2.5 frames, rounded


def test_more_frames_than_the_range_holds_is_refused_with_the_counts():
    with pytest.raises(UserError, match="has 40 frames in the chosen range but --num_frames is 41"):
        choose_frames(VIDEO, range(10, 50), num_frames=41)
    with pytest.raises(UserError, match="at most the video's 25 fps"):
        choose_frames(VIDEO, range(0, 100), fps=30)


def test_max_side_scales_down_only():
    frame = np.zeros((60, 120, 4), np.uint8)
    assert fit_max_side(frame, 60).shape == (30, 60, 4)
    assert fit_max_side(frame, 200) is frame
    assert fit_max_side(frame, None) is frame


def test_synthetic_cli_films_the_blob_into_a_video_file(tmp_path, repo_root):
    import subprocess
    import sys

    out = tmp_path / "clip.gif"
    subprocess.run([sys.executable, "-m", "tools.synthetic", str(out), "--frames", "5", "--size", "32",
                    "--backdrop", "noisy"], check=True, cwd=repo_root, capture_output=True)
    source = open_source(out)
    assert source.num_frames == 5 and read_frames(source, [4])[4].shape == (32, 32, 4)
