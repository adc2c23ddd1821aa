"""tools/bench_generate in CI size: the tiny model on the CPU, each mode once, a few steps."""
import json

import pytest
import torch

from ldm.models.syncdreamer import load_config
from tools.bench_generate import cli, steps
from tools.bench_generate.cli import main
from tools.bench_generate.workload import count_step_flops


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _run(tmp_path, *args):
    """One thread: on a busy 2-core machine, two spinning threads make the tiny model several times slower."""
    out = tmp_path / "bench.json"
    main(["--cfg", "configs/tiny.yaml", "--device", "cpu", "--threads", "1", "--json", str(out), *map(str, args)])
    return json.loads(out.read_text())


def test_steps_mode_reports_time_memory_flops_and_plain_ratio(repo_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(repo_root)
    result = _run(tmp_path, "--frames", 1, "--batch_view_num", 16, 8, "--steps-to-time", 1, "--warmup", 0,
                  "--sample_steps", 20)
    assert result["mode"] == "steps" and result["device"] == "cpu" and result["ddim_steps"] == 20
    assert 0 < result["volume_flops"] < result["unet_flops"] < result["flops_per_step"]
    assert result["total_pflop"] == pytest.approx(result["flops_per_step"] * 20 / 1e15)
    fast = [r for r in result["rows"] if r["path"] == "fast"]
    plain = [r for r in result["rows"] if r["path"] == "plain"]
    assert [r["batch_view_num"] for r in fast] == [16, 8] and len(plain) == 1
    for row in fast + plain:
        assert row["status"] == "ok" and row["step_s"] > 0 and row["peak_mem_gib"] > 0.05
        assert row["projected_s"] == pytest.approx(row["step_s"] * 20)
        assert row["tflops"] == pytest.approx(result["flops_per_step"] / row["step_s"] / 1e12)
    for row in fast:
        assert min(row["volume_s"], row["frustum_s"], row["unet_s"]) > 0
    assert result["plain_ratio"] == pytest.approx(plain[0]["step_s"] / fast[0]["step_s"])
    assert result["prepare_s"] > 0 and result["decode_s"] > 0
    table = capsys.readouterr().out
    assert "plain / fast" in table and "PFLOP" in table
    assert "row: fast fp32 1 x 8: " in table  # each row is printed when measured, before the table


def test_compile_adds_a_row_with_its_first_step_timed_apart(repo_root, tmp_path, monkeypatch, capsys):
    """aot_eager captures the graphs as inductor would, without its minutes of code generation on a CPU."""
    from functools import partial

    from ldm.compile import compile_step_networks

    monkeypatch.chdir(repo_root)
    monkeypatch.setattr(steps, "compile_step_networks", partial(compile_step_networks, backend="aot_eager"))
    monkeypatch.setattr(cli, "check_compile", lambda mode, device: None)  # aot_eager needs no C++ compiler
    try:
        result = _run(tmp_path, "--frames", 1, "--steps-to-time", 1, "--warmup", 0, "--compile", "default",
                      "--no-plain", "--no-breakdown", "--no-decode")
    finally:
        torch._dynamo.reset()
    first, compiled = result["rows"]
    assert first["path"] == "fast" and compiled["path"] == "compiled" and compiled["compile_mode"] == "default"
    assert compiled["status"] == "ok" and compiled["first_step_s"] > 0 and compiled["step_s"] > 0
    assert compiled["batch_view_num"] == first["batch_view_num"] and compiled["precision"] == first["precision"]
    assert "compiled (default): first step" in capsys.readouterr().out


def test_unet_only_mode_compares_fast_plain_and_bf16(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    result = _run(tmp_path, "--unet-only", "--precision", "bf16", "--steps-to-time", 1, "--warmup", 0)
    assert [r["name"] for r in result["rows"]] == ["fast fp32", "plain fp32", "fast bf16"]
    fast, plain, bf16 = result["rows"]
    assert fast["max_abs_diff_vs_fp32"] <= 5e-4  # same math in fp32 (the tiny random network amplifies rounding)
    assert 0 < bf16["max_rel_diff_vs_fp32"] < 0.1  # bf16 drifts, but stays an approximation
    assert plain["speedup_vs_plain"] == 1.0 and all(r["forward_s"] > 0 for r in result["rows"])


def test_drift_mode_reports_image_differences(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)
    result = _run(tmp_path, "--drift", "--frames", 1, "--sample_steps", 2, "--precision", "bf16")
    assert [r["precision"] for r in result["rows"]] == ["fp32", "bf16"]
    fp32, bf16 = result["rows"]
    assert fp32["status"] == bf16["status"] == "ok" and fp32["max_abs_diff"] == 0
    assert 0 < bf16["max_abs_diff"] <= 2 and bf16["max_uint8_diff"] >= 0


def test_out_of_memory_becomes_a_row_not_a_crash(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(repo_root)

    run_step = steps.run_step

    def out_of_memory(sampler, inputs, *args):
        if inputs["x_t"].is_meta:  # counting FLOPs allocates nothing
            return run_step(sampler, inputs, *args)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(steps, "run_step", out_of_memory)
    result = _run(tmp_path, "--frames", 1, "--no-plain", "--no-decode", "--steps-to-time", 1)
    assert [r["status"] for r in result["rows"]] == ["out of memory"]


def test_full_model_step_flops_match_the_compute_floor(repo_root):
    """16 frames x 16 views x 50 steps with decomposed guidance: the issue's floor is ~8.5 PFLOP."""
    flops = count_step_flops(load_config(repo_root / "configs" / "syncdreamer.yaml"), 16, (2.0, 1.0))
    assert 7.5 < flops["flops_per_step"] * 50 / 1e15 < 9.0
    assert flops["unet_flops"] > 0.9 * flops["flops_per_step"]
