"""Every stage against the original's fixtures (../shared/reference), on the CPU and, where present, CUDA.

The comparisons and their tolerances live in tools/parity (``python -m tools.parity_report`` prints the
same deviations); each tolerance covers the spread measured across CPU kernel sets, oneDNN and thread
counts, and tests/test_parity_defects.py shows each loosened one still fails on a real mistake.
"""
import pytest
import torch

from tools.parity.checks import CHECKS, Reference, run_check

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module", params=DEVICES)
def reference(request, reference_dir):
    return Reference(reference_dir, request.param)


@pytest.mark.parametrize("stage", list(CHECKS))
def test_stage_matches_the_original_within_tolerance(reference, stage):
    deviations = run_check(reference, stage)
    if not deviations:
        pytest.skip(f"{stage} compares free-running samples, whose noise the fixtures drew on the CPU")
    failed = [f"{d.quantity}: max|diff| {d.max_abs:.3g}, {d.score:.3g} x tolerance ({d.tolerance.describe()})"
              for d in deviations if not d.ok]
    assert not failed, f"{stage}: " + "; ".join(failed)
