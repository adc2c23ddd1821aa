"""tools/bench_recon runs every batch size with every rasteriser and reports speed and held-out PSNR."""
import json
import sys

import pytest
import torch

from tools import bench_recon


def test_bench_reports_batch_sizes_and_rasterisers(monkeypatch, tmp_path, capsys):
    threads = torch.get_num_threads()
    out = tmp_path / "bench.json"
    monkeypatch.setattr(sys, "argv", [
        "bench_recon", "--size", "16", "--frames", "2", "--iterations", "4", "--eval_every", "2", "--num_points", "100",
        "--batch_size", "1", "2", "--rasterizer", "torch", "reference", "--threads", "1", "--json", str(out),
    ])
    try:
        bench_recon.main()
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "(held out)" in printed
    runs = json.loads(out.read_text())["runs"]
    assert [(r["batch_size"], r["rasterizer"]) for r in runs] == [
        (1, "rasterize_fast"), (1, "rasterize_reference"), (2, "rasterize_fast"), (2, "rasterize_reference")]
    for run in runs:
        assert run["iterations_per_second"] > 0 and 5 < run["held_out_psnr"] < 60
        assert [c["iteration"] for c in run["curve"]] == [2, 4]
        assert f"batch {run['batch_size']}: " in printed
    assert runs[0]["speed_vs_first_rasterizer"] == 1.0 and runs[2]["speed_vs_first_rasterizer"] == 1.0
    # Same start, same views: the two rasterisers train the same model (float error apart).
    assert runs[1]["held_out_psnr"] == pytest.approx(runs[0]["held_out_psnr"], abs=0.01)
