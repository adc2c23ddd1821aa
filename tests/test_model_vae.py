"""AutoencoderKL and the model's first-stage helpers: parity with tiny/vae.pt; ``prepare`` with
tiny/sample.pt, including its single draw from the CPU generator."""
import pytest
import torch


RTOL = ATOL = 1e-4  # reference/README.md section 7


@pytest.fixture(scope="module")
def fixture(reference_dir):
    return torch.load(reference_dir / "fixtures/tiny/vae.pt", weights_only=True)


@torch.no_grad()
def test_posterior_matches_reference(tiny_model, fixture):
    posterior = tiny_model.first_stage_model.encode(fixture["x"])
    torch.testing.assert_close(posterior.mean, fixture["posterior_mean"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(posterior.logvar, fixture["posterior_logvar"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(posterior.std, fixture["posterior_std"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(posterior.mode(), fixture["posterior_mode"], rtol=RTOL, atol=ATOL)
    torch.manual_seed(fixture["posterior_sample_seed"])
    torch.testing.assert_close(posterior.sample(), fixture["posterior_sample"], rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_encode_and_decode_first_stage_match_reference(tiny_model, fixture):
    torch.testing.assert_close(tiny_model.encode_first_stage(fixture["x"], sample=False),
                               fixture["encode_first_stage_mode"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(tiny_model.first_stage_model.decode(fixture["z"]), fixture["decode"],
                               rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(tiny_model.decode_first_stage(fixture["decode_first_stage_input"]),
                               fixture["decode_first_stage"], rtol=RTOL, atol=ATOL)


@torch.no_grad()
def test_prepare_matches_reference_and_draws_one_randn(tiny_model, reference_dir):
    sample = torch.load(reference_dir / "fixtures/tiny/sample.pt", weights_only=True)
    batch = {"input_image": sample["input_image"], "input_elevation": sample["input_elevation"]}
    expected = sample["main"]["prepare"]
    torch.manual_seed(sample["meta"]["seed"])
    clip_embed, x_input, elevation = tiny_model.prepare(batch)
    torch.testing.assert_close(clip_embed, expected["clip_embed"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(x_input, expected["x_input"], rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(elevation, expected["elevation"], rtol=0, atol=0)
    after_prepare = torch.get_rng_state()
    torch.manual_seed(sample["meta"]["seed"])
    torch.randn(x_input.shape)
    assert torch.equal(after_prepare, torch.get_rng_state())
