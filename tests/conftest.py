import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ("metric_weights",)  # random weight files for evaluate.py's networks


def pytest_configure(config):
    """One thread per test process, for it and the scripts it starts: ``make test`` runs two pytest
    workers on two cores, and a second thread per process would only contend (every small op then
    waits for a descheduled thread). The parity tolerances cover 1 and 2 threads."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _reference_dir() -> Path:
    return Path(os.environ.get("EFFICIENT4D_REFERENCE", REPO_ROOT.parent / "shared" / "reference"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The parity fixtures (../shared/reference); tests using them skip cleanly where absent."""
    path = _reference_dir()
    if not (path / "README.md").is_file():
        pytest.skip(f"parity fixtures not found at {path} (set EFFICIENT4D_REFERENCE to their folder)")
    return path


@pytest.fixture(scope="session")
def tiny_model(reference_dir):
    """The tiny model (configs/tiny.yaml) with the fixture weights loaded strictly; read-only in tests."""
    from ldm.checkpoint import load_checkpoint
    from ldm.models.syncdreamer import build_model, load_config

    return load_checkpoint(build_model(load_config(REPO_ROOT / "configs/tiny.yaml")),
                           reference_dir / "fixtures/tiny/state_dict.pt")
