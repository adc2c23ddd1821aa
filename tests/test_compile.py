"""--compile: the compiled step networks generate what the plain ones do; bad settings are one line.

On the CPU the graphs are captured by TorchDynamo exactly as with inductor, but run by the aot_eager
backend: inductor's code generation for the tiny model takes about two minutes cold, too long for the
suite; its speed (and its first-step cost) is measured on a GPU by ``tools.bench_generate --compile``.
"""
import numpy as np
import pytest
import torch
from PIL import Image

from ldm import compile as compile_module
from ldm import pipeline
from ldm.checkpoint import randomize_weights
from ldm.models.syncdreamer import build_model, load_config
from tolerances import uint8_close
from tools.synthetic import make_video
from utils.errors import UserError


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    yield
    torch._dynamo.reset()  # compiled graphs hold the model; free them for the next test


@pytest.fixture
def no_compiler_check(monkeypatch):
    """aot_eager and the recording stand-in generate no code, so they run where no C++ compiler is
    installed; the check that asks for one is tested on its own below."""
    monkeypatch.setattr(pipeline, "check_compile", lambda mode, device: None)


def _generate(repo_root, tmp_path, name, devices, compile, sample_steps=2):
    pipeline.generate_frames(tmp_path / "video", tmp_path / name, 15, cfg=repo_root / "configs/tiny.yaml", ckpt="random",
                             crop_size=40, sample_steps=sample_steps, frame_num=2, devices=devices, compile=compile,
                             progress=False)
    return np.stack([np.asarray(Image.open(tmp_path / name / f"{i}.png")) for i in range(2)])


def test_compiled_step_networks_generate_the_same_frames(repo_root, tmp_path, monkeypatch, no_compiler_check):
    compiled = []

    def compile_with_aot_eager(model, mode):
        compiled.append(model)
        return compile_module.compile_step_networks(model, mode, backend="aot_eager")

    monkeypatch.setattr(pipeline, "compile_step_networks", compile_with_aot_eager)
    make_video(tmp_path / "video", num_frames=2, size=96, seed=2)
    plain = _generate(repo_root, tmp_path, "off", ["cpu"], "off")
    compiled_frames = _generate(repo_root, tmp_path, "default", ["cpu"], "default")
    assert all(m._compiled_call_impl is not None for m in compile_module.step_networks(compiled[-1]))
    uint8_close(compiled_frames, plain)


def test_devices_sharing_one_model_compile_it_once(repo_root, tmp_path, monkeypatch, no_compiler_check):
    compiled = []
    monkeypatch.setattr(pipeline, "compile_step_networks", lambda model, mode: compiled.append((model, mode)) or model)
    make_video(tmp_path / "video", num_frames=2, size=96, seed=2)
    _generate(repo_root, tmp_path, "two", ["cpu", "cpu"], "reduce-overhead", sample_steps=1)
    assert [mode for _, mode in compiled] == ["reduce-overhead"]


def test_compiling_keeps_parameters_and_state_dict_keys(repo_root):
    model = randomize_weights(build_model(load_config(repo_root / "configs/tiny.yaml")), seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    compile_module.compile_step_networks(model, "default")
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_unknown_compile_mode_is_one_line():
    with pytest.raises(UserError, match="--compile must be one of off, default, reduce-overhead, max-autotune, got 'fast'"):
        compile_module.check_compile("fast", torch.device("cpu"))


def test_compile_on_a_cpu_without_a_cxx_compiler_is_one_line(monkeypatch):
    monkeypatch.setattr(compile_module.shutil, "which", lambda name: None)
    compile_module.check_compile("off", torch.device("cpu"))  # off needs nothing
    with pytest.raises(UserError, match="needs a C\\+\\+ compiler"):
        compile_module.check_compile("default", torch.device("cpu"))


def test_compile_on_cuda_without_triton_is_one_line(monkeypatch):
    monkeypatch.setattr(compile_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="needs Triton"):
        compile_module.check_compile("reduce-overhead", torch.device("cuda"))
