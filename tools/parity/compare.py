"""How far an output is from the original's: one Deviation per compared quantity, scored against its tolerance."""
import math
from dataclasses import dataclass

import numpy as np
import torch

from tools.parity.tolerances import Tolerance


@dataclass(frozen=True)
class Deviation:
    """``score`` is the deviation in units of the tolerance: the comparison passes when it is at most 1.

    ``max_abs`` is the largest absolute difference (uint8: grey levels; schedules: float32 ulps);
    ``share`` the fraction of values that differ at all.
    """
    stage: str
    quantity: str
    max_abs: float
    share: float
    score: float
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        return self.score <= 1.0


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.array(x)) if not torch.is_tensor(x) else x.detach().cpu()


def compare(stage: str, quantity: str, got, ref, tolerance: Tolerance) -> Deviation:
    """Compare ``got`` with the reference ``ref`` (tensors or arrays of one shape) under ``tolerance``.

    * ``float``: |got - ref| <= atol + rtol |ref| elementwise (torch.testing.assert_close's rule);
    * ``uint8``: at most ``max_levels`` grey levels apart, and differing at most at ``max_share`` of values;
    * ``ulp``: at most ``max_ulps`` float32 steps apart;
    * ``exact``: equal, dtype included.
    A shape mismatch is an infinite deviation.
    """
    got, ref = _as_tensor(got), _as_tensor(ref)
    if got.shape != ref.shape or (tolerance.kind == "exact" and got.dtype != ref.dtype):
        return Deviation(stage, quantity, math.inf, 1.0, math.inf, tolerance)
    if tolerance.kind == "exact":
        equal = torch.equal(got, ref)
        return Deviation(stage, quantity, 0.0 if equal else math.inf, 0.0 if equal else 1.0,
                         0.0 if equal else math.inf, tolerance)
    if tolerance.kind == "ulp":
        steps = (got.float().view(torch.int32).long() - ref.float().view(torch.int32).long()).abs()
        worst = float(steps.max()) if steps.numel() else 0.0
        share = float((steps > 0).float().mean()) if steps.numel() else 0.0
        return Deviation(stage, quantity, worst, share, worst / tolerance.max_ulps if tolerance.max_ulps else
                         (0.0 if worst == 0 else math.inf), tolerance)
    diff = (got.double() - ref.double()).abs()
    worst = float(diff.max()) if diff.numel() else 0.0
    share = float((diff > 0).double().mean()) if diff.numel() else 0.0
    if tolerance.kind == "uint8":
        score = max(worst / tolerance.max_levels, share / tolerance.max_share)
    else:
        bound = tolerance.atol + tolerance.rtol * ref.double().abs()
        score = float((diff / bound).max()) if diff.numel() else 0.0
    return Deviation(stage, quantity, worst, share, score, tolerance)
