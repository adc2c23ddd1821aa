"""prepare_video.py: outputs, pass-through, --force, and every user mistake as one line, nothing half-written."""
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import prepare.pipeline
from prepare.pipeline import prepare_video
from tools.synthetic import backdrop_video, make_video, write_video
from utils.images import list_frames, read_rgba


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 12-frame 64 px mp4 of the blob over a plain backdrop."""
    frames, _ = backdrop_video(12, 64, 64, "plain", seed=5)
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", frames)


def run(repo_root, *args):
    return subprocess.run([sys.executable, "prepare_video.py", *map(str, args)], cwd=repo_root,
                          capture_output=True, text=True, timeout=120)


def leftovers(folder):
    return [p for p in folder.rglob(".*") if ".tmp" in p.name or p.name.endswith(".old")]


def test_cli_writes_frames_contact_sheet_and_report(repo_root, tmp_path, clip):
    out = tmp_path / "data" / "clip"
    proc = run(repo_root, "--input", clip, "--output", out, "--num_frames", 5, "--matting", "background")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in list_frames(out)] == [f"{i}.png" for i in range(5)]
    frames = [read_rgba(p) for p in list_frames(out)]
    assert all(f.shape == (64, 64, 4) for f in frames)
    report = json.loads((out / "preview" / "report.json").read_text())
    assert [f["source_frame"] for f in report["frames"]] == [0, 3, 6, 8, 11]
    assert all(0.1 < f["foreground"] < 0.3 for f in report["frames"]) and report["matting"] == "background"
    assert "foreground, % of each frame: 0:" in proc.stdout
    with Image.open(out / "preview" / "contact_sheet.png") as sheet:
        assert sheet.mode == "RGB" and sheet.width > 4 * 64
    assert leftovers(tmp_path) == []


def test_fps_and_range_choose_the_frames(repo_root, tmp_path, clip):
    out = tmp_path / "out"
    proc = run(repo_root, "--input", clip, "--output", out, "--fps", 5, "--start", "0.2s", "--end", 11)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "preview" / "report.json").read_text())
    assert [f["source_frame"] for f in report["frames"]] == [2, 4, 6, 8, 10]


def test_rgba_frames_pass_through_unchanged(tmp_path):
    source = make_video(tmp_path / "rgba", num_frames=4, size=48, seed=3)
    prepare_video(tmp_path / "rgba", tmp_path / "out", num_frames=4, log=lambda _: None)  # auto -> alpha
    for i, path in enumerate(source):
        assert np.array_equal(read_rgba(tmp_path / "out" / f"{i}.png"), read_rgba(path))


def test_large_frames_are_scaled_to_max_side(tmp_path):
    make_video(tmp_path / "rgba", num_frames=2, size=64, seed=3)
    prepare_video(tmp_path / "rgba", tmp_path / "out", num_frames=2, max_side=32, log=lambda _: None)
    assert read_rgba(tmp_path / "out" / "1.png").shape == (32, 32, 4)


def test_force_replaces_an_earlier_output_entirely(tmp_path, clip):
    out = tmp_path / "out"
    prepare_video(clip, out, num_frames=6, log=lambda _: None)
    prepare_video(clip, out, num_frames=3, force=True, log=lambda _: None)
    assert [p.name for p in list_frames(out)] == ["0.png", "1.png", "2.png"]  # no stale 3..5.png
    assert leftovers(tmp_path) == []


def test_matting_none_gives_opaque_frames(tmp_path, clip):
    prepare_video(clip, tmp_path / "out", num_frames=2, matting="none", log=lambda _: None)
    assert (read_rgba(tmp_path / "out" / "0.png")[..., 3] == 255).all()


def test_interrupted_write_leaves_nothing(tmp_path, clip, monkeypatch):
    written = []

    def write_then_stop(path, image):
        written.append(path)
        if len(written) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(prepare.pipeline, "write_png", write_then_stop)
    with pytest.raises(KeyboardInterrupt):
        prepare_video(clip, tmp_path / "out", num_frames=5, log=lambda _: None)
    assert list(tmp_path.iterdir()) == []


def _garbage(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    return path


def _empty(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


def _no_object(tmp_path):
    frames = np.full((6, 48, 48, 3), 200, np.uint8)
    frames[3:, 10:30, 10:30] = 40  # an object in the last three frames only
    return write_video(tmp_path / "blank.mp4", frames)


def _opaque_folder(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (16, 16), (i, 0, 0)).save(folder / f"{i}.png")
    return folder


ERRORS = {
    # case: (make the input, extra arguments, words the one line must hold)
    "unreadable video": (_garbage, [], ["cannot read video", "broken.mp4"]),
    "empty video": (_empty, [], ["empty.mp4"]),
    "missing input": (lambda t: t / "nope.mp4", [], ["nope.mp4 does not exist"]),
    "not a video": (lambda t: (t / "notes.txt").write_text("x") and t / "notes.txt", [], ["notes.txt", ".mp4"]),
    "fewer frames than asked": (None, ["--num_frames", 20], ["has 12 frames", "--num_frames is 20"]),
    "frames without foreground": (_no_object, ["--num_frames", 6, "--matting", "background"],
                                  ["no foreground found in frame 0 (source frame 0), 1 (source frame 1), "
                                   "2 (source frame 2)"]),
    "missing matting model": (None, ["--matting", "rembg", "--matting_model", "/nowhere/u2net.onnx"],
                              ["/nowhere/u2net.onnx not found", "rembg releases"]),
    "alpha matting on opaque frames": (_opaque_folder, ["--num_frames", 3, "--matting", "alpha"],
                                       ["--matting alpha", "opaque"]),
    "range outside the video": (None, ["--start", "5s"], ["select no frame"]),
    "seconds on a frame folder": (_opaque_folder, ["--start", "1s", "--num_frames", 1], ["frame indices"]),
    "bad position": (None, ["--start", "soon"], ["--start", "soon"]),
    "bad max side": (None, ["--max_side", "-5"], ["--max_side", "-5"]),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_mistakes_give_one_line_and_write_nothing(repo_root, tmp_path, clip, case):
    make, extra, words = ERRORS[case]
    source = make(tmp_path) if make else clip
    before = source.read_bytes() if source.is_file() else None
    out = tmp_path / "data" / "out"
    proc = run(repo_root, "--input", source, "--output", out, *extra)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    assert not out.exists() and leftovers(tmp_path) == []
    if before is not None:
        assert source.read_bytes() == before


def test_existing_output_is_refused_without_force_and_kept(repo_root, tmp_path, clip):
    out = tmp_path / "out"
    out.mkdir()
    (out / "0.png").write_bytes(b"mine")
    proc = run(repo_root, "--input", clip, "--output", out)
    assert proc.returncode == 2 and "already holds files; pass --force" in proc.stderr
    assert (out / "0.png").read_bytes() == b"mine"


def test_output_overlapping_the_input_is_refused(repo_root, tmp_path):
    make_video(tmp_path / "frames", num_frames=2, size=32)
    for out in (tmp_path / "frames", tmp_path / "frames" / "sub", tmp_path):
        proc = run(repo_root, "--input", tmp_path / "frames", "--output", out, "--force")
        assert proc.returncode == 2 and "overlaps the input" in proc.stderr
    assert [p.name for p in list_frames(tmp_path / "frames")] == ["0.png", "1.png"]


def test_a_frame_whose_area_jumps_gets_one_line_and_a_place_on_the_sheet(tmp_path):
    folder = tmp_path / "rgba"
    folder.mkdir()
    for i in range(9):
        frame = np.zeros((40, 40, 4), np.uint8)
        side = 30 if i == 6 else 10  # frame 6: 9x the others' area, as when the matte swallows the backdrop
        frame[5:5 + side, 5:5 + side] = 255
        Image.fromarray(frame).save(folder / f"{i}.png")
    lines = []
    checks = prepare_video(folder, tmp_path / "out", num_frames=9, log=lines.append)
    assert [c.index for c in checks if c.problem] == [6]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and "frame 6 (source frame 6)" in warnings[0] and "out/6.png" in warnings[0]
    sheet = np.asarray(Image.open(tmp_path / "out" / "preview" / "contact_sheet.png"))
    assert ((sheet[..., 0] > 200) & (sheet[..., 1] < 60)).sum() > 100  # the flagged frame's red border
