"""End-to-end stochastic sampling against the original (fixtures/tiny/sample.pt).

The tiny model loads the fixture weights strictly; the inputs are prepared from the egret frames as
the fixture's meta says; each run reseeds and samples, and every step's guided noise and latent, the
decoded images and the written grid are compared within reference/README.md section 7's tolerances.

Attention runs on the "plain" backend, the original's softmax math. The fused SDPA backend agrees
with it to ~1e-6 per call (tests/test_attention.py), but this random-weight network amplifies such
rounding differences along the 4 guided steps beyond the fixtures' tolerances.
"""
import pytest
import torch

from ldm.checkpoint import load_checkpoint
from ldm.data import prepare_frames, select_frames
from ldm.models import sampler as sampler_module
from ldm.models.sampler import SyncDDIMSampler, get_w
from ldm.models.syncdreamer import build_model, load_config
from ldm.modules.attention import attention_backend
from ldm.pipeline import to_strips
from tolerances import uint8_close

DG = [2.0, 1.0]
# run name -> (guidance, batch_view_num, smooth_filter), as listed in the fixture's meta.runs.
# "main" runs with batch_view_num 4: the fixture records that the original's bvn4 run equals main bit
# for bit, so this one run checks both; the CLI test runs main with batch_view_num 16.
RUNS = {
    "main": (DG, 4, True),
    "cfg": (2.0, 16, True),
    "nosmooth": (DG, 16, False),
}


@pytest.fixture(scope="module")
def fixture(reference_dir):
    return torch.load(reference_dir / "fixtures" / "tiny" / "sample.pt", weights_only=True)


@pytest.fixture(scope="module")
def model(reference_dir, repo_root):
    model = build_model(load_config(repo_root / "configs" / "tiny.yaml"))
    return load_checkpoint(model, reference_dir / "fixtures" / "tiny" / "state_dict.pt")


@pytest.fixture(scope="module")
def batch(fixture, reference_dir):
    meta = fixture["meta"]
    files = select_frames(reference_dir.parent / "data" / "walking_white_faced_egret", meta["frame_num"])
    files = files[:meta["frame_num"]]
    assert [f.name for f in files] == meta["used_files"]
    batch = prepare_frames(files, meta["elevation_deg"], meta["crop_size"], meta["image_size"])
    assert torch.equal(batch["input_image"], fixture["input_image"])
    assert torch.equal(batch["input_elevation"], fixture["input_elevation"])
    return batch


@pytest.fixture(scope="module")
def ddim(model, fixture):
    return SyncDDIMSampler(model, fixture["meta"]["ddim_steps"], latent_size=fixture["meta"]["latent_size"],
                           progress=False)


def test_schedule_matches_reference(ddim, fixture):
    for name, expected in fixture["schedule"].items():
        got = torch.as_tensor(getattr(ddim, name))
        assert got.dtype == expected.dtype and torch.equal(got, expected), name


def _fixture_w(fixture, monkeypatch):
    """Our get_w equals the original's except for 5/6 frames (the documented 5-tap fix). For such a
    fixture, feed the matrix the original used so that the rest of the step is still compared."""
    meta = fixture["meta"]
    ours = get_w(meta["frame_num"], meta["is_cyc"])
    if ours.dtype == fixture["get_w"].dtype and torch.equal(ours, fixture["get_w"]):
        return
    assert meta["frame_num"] in (5, 6) and not meta["is_cyc"]
    monkeypatch.setattr(sampler_module, "get_w", lambda frame_num, is_cyc: fixture["get_w"].clone())


def test_prepare_matches_reference_and_draws_one_randn(model, batch, fixture):
    """RNG order steps 1-2: prepare draws exactly the posterior randn, so the next draw is x_T."""
    meta, expected = fixture["meta"], fixture["main"]
    torch.manual_seed(meta["seed"])
    clip_embed, x_input, elevation = model.prepare(batch)
    x_T = torch.randn(expected["x_T"].shape)
    torch.testing.assert_close(clip_embed, expected["prepare"]["clip_embed"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x_input, expected["prepare"]["x_input"], rtol=1e-4, atol=1e-4)
    assert torch.equal(elevation, expected["prepare"]["elevation"])
    assert torch.equal(x_T, expected["x_T"])


def _replay_prepare(recorded):
    """model.prepare returning the original's recorded outputs, with the same single CPU randn draw.

    The sampler is then compared on identical conditioning: our VAE encoder agrees with the original's
    to ~1e-6 (tests/test_model_vae.py), which the 4 guided steps of this random network amplify to
    about the tolerance; the whole chain, our prepare included, is checked on the written grids here and
    in tests/test_generate_cli.py.
    """
    def prepare(batch):
        torch.randn(recorded["x_input"].shape)
        return recorded["clip_embed"].clone(), recorded["x_input"].clone(), recorded["elevation"].clone()
    return prepare


@pytest.mark.parametrize("run", ["main", "cfg"])
def test_each_step_matches_reference_given_its_input(run, model, ddim, fixture, monkeypatch):
    """Teacher-forced: step i starts from the original's latent after step i-1, so each step's guided
    noise (volumes, smoothing, frustum features, guidance) is compared at full precision."""
    guidance, batch_view_num, smooth_filter = RUNS[run]
    expected, meta = fixture[run], fixture["meta"]
    _fixture_w(fixture, monkeypatch)
    prepared = expected["prepare"]
    x_t = expected["x_T"].expand(meta["frame_num"], -1, -1, -1, -1)
    with attention_backend("plain"):
        for i, index in enumerate(expected["step_index"].tolist()):
            _, e_t = ddim.denoise_apply(x_t, prepared["x_input"], prepared["clip_embed"], prepared["elevation"],
                                        expected["step_time_steps"][i], index, guidance, batch_view_num,
                                        smooth_filter, meta["is_cyc"])
            torch.testing.assert_close(e_t, expected["e_t"][i], rtol=1e-4, atol=1e-4)
            x_t = expected["x_t"][i]


@pytest.mark.parametrize("run", sorted(RUNS))
def test_sample_matches_reference(run, model, batch, ddim, fixture, monkeypatch):
    """Free-running, as generate.py samples: same seed, same draws, same latents and images.

    Rounding differences grow along the chain (the latents are ~26 in size), so the guided noise is
    held to the latents' tolerance here; the teacher-forced test above holds each step to 1e-4.
    """
    guidance, batch_view_num, smooth_filter = RUNS[run]
    expected, meta = fixture[run], fixture["meta"]
    _fixture_w(fixture, monkeypatch)
    monkeypatch.setattr(model, "prepare", _replay_prepare(expected["prepare"]))
    steps = []
    with attention_backend("plain"):
        torch.manual_seed(meta["seed"])
        images = ddim.sample(model, batch, guidance, batch_view_num, smooth_filter=smooth_filter,
                             is_cyc=meta["is_cyc"], callback=steps.append)

    assert torch.equal(torch.tensor([s.index for s in steps]), expected["step_index"])
    assert torch.equal(torch.stack([s.time_steps for s in steps]), expected["step_time_steps"])
    torch.testing.assert_close(torch.stack([s.e_t for s in steps]), expected["e_t"], rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(torch.stack([s.x_prev for s in steps]), expected["x_t"], rtol=1e-4, atol=1e-3)
    if "images" in expected:
        torch.testing.assert_close(images, expected["images"], rtol=1e-4, atol=1e-4)
    if run == "main":  # the original's bvn4 run equals main bit for bit
        assert torch.equal(fixture["bvn4"]["x_t"], expected["x_t"])
    uint8_close(to_strips(images), expected["grid_uint8"].numpy())
