import os
import random

import numpy as np
import pytest
from PIL import Image

from utils.errors import UserError
from utils.images import (
    atomic_path,
    join_views,
    list_frames,
    natural_key,
    read_rgb,
    read_rgba,
    split_views,
    write_json,
    write_png,
)


def test_frames_sort_numerically_past_99(tmp_path):
    names = [f"{i}.png" for i in range(120)]
    for name in random.Random(0).sample(names, len(names)):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_frames(tmp_path)] == names


def test_natural_key_orders_zero_padded_and_plain_names():
    assert sorted(["10.png", "9.png", "100.png", "099.png"], key=natural_key) == ["9.png", "10.png", "099.png", "100.png"]


def test_list_frames_ignores_non_png_files(tmp_path):
    (tmp_path / "0.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_frames(tmp_path)] == ["0.png"]


def test_list_frames_errors_name_the_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list_frames(tmp_path / "missing")
    with pytest.raises(UserError, match=str(tmp_path)):
        list_frames(tmp_path)


def test_png_round_trip_rgba_and_rgb(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
    write_png(tmp_path / "a" / "x.png", rgba)
    np.testing.assert_array_equal(read_rgba(tmp_path / "a" / "x.png"), rgba)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a" / "x.png"), rgba[..., :3])


def test_read_rgba_rejects_frames_without_alpha(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "rgb.png")
    with pytest.raises(UserError, match="alpha"):
        read_rgba(tmp_path / "rgb.png")


def test_unreadable_image_is_a_user_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="bad.png"):
        read_rgb(tmp_path / "bad.png")


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert os.listdir(tmp_path) == []
    write_json(target, {"a": 1})
    assert target.read_text() == '{\n    "a": 1\n}'
    assert os.listdir(tmp_path) == ["out.json"]


def test_split_and_join_views_round_trip():
    strip = np.arange(8 * 32 * 3, dtype=np.uint8).reshape(8, 32, 3)
    views = split_views(strip, num_views=4)
    assert views.shape == (4, 8, 8, 3)
    np.testing.assert_array_equal(views[2], strip[:, 16:24])
    np.testing.assert_array_equal(join_views(views), strip)


def test_split_views_rejects_wrong_width():
    with pytest.raises(UserError, match="16 x its height"):
        split_views(np.zeros((64, 1000, 3), np.uint8))
