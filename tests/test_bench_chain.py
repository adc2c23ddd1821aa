"""tools/bench_chain in CI size: run.sh through the stage timer on the CPU with the tiny model."""
import json

import pytest

from tools.bench_chain import main
from utils.errors import UserError


def test_chain_bench_times_every_stage_and_its_start_up(tmp_path, capsys):
    out = tmp_path / "chain.json"
    main(["--frames", "2", "--size", "64", "--sample_steps", "2", "--no-recon", "--json", str(out)])
    result = json.loads(out.read_text())
    stages = [r["stage"] for r in result["rows"]]
    assert stages == ["preflight", "generate", "interpolate", "assemble", "confidence", "convert"]
    for row in result["rows"][1:]:
        assert 0 < row["startup_s"] < row["wall_s"] and row["compute_s"] > 0 and row["peak_gpu_gib"] is None
    loads = {r["stage"]: r["loading_s"] for r in result["rows"][1:]}
    assert loads["generate"] > 0 and loads["interpolate"] > 0 and loads["confidence"] > 0
    assert loads["assemble"] == loads["convert"] == 0
    assert sum(r["wall_s"] for r in result["rows"]) <= result["total_s"]
    printed = capsys.readouterr().out
    assert "whole chain" in printed and "process start-up" in printed
    assert "=== generate: " in printed  # run.sh's stage lines come through as they happen


def test_a_failing_chain_is_one_line_with_the_end_of_its_output(tmp_path):
    with pytest.raises(UserError, match=r"run.sh failed \(exit 2\): .*configs/none.yaml"):
        main(["--frames", "2", "--size", "64", "--cfg", "configs/none.yaml", "--no-recon"])
