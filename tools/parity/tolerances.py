"""The parity tolerances, one per kind of output, each with the rule it was set by.

Measured spread (``python -m tools.parity_report --sweep``, README "Tests"): the largest deviation
from the fixtures over ATen CPU capabilities default/avx2/avx512, oneDNN on and off, and 1 and 2
threads (on a 2-core Intel Xeon with AVX-512). The rule: a tolerance covers that spread with a margin of
at least 4x, and each loosened one is still crossed by a real defect (tests/test_parity_defects.py).
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """``kind``: ``float`` (|got - ref| <= atol + rtol |ref|), ``uint8`` (at most ``max_levels`` apart at
    most at ``max_share`` of values), ``ulp`` (at most ``max_ulps`` float32 steps) or ``exact``."""
    kind: str
    atol: float = 0.0
    rtol: float = 0.0
    max_levels: int = 0
    max_share: float = 0.0
    max_ulps: int = 0
    rule: str = ""

    def describe(self) -> str:
        if self.kind == "float":
            return f"atol {self.atol:g}, rtol {self.rtol:g}"
        if self.kind == "uint8":
            return f"<= {self.max_levels} level at <= {self.max_share:.1%} of values"
        if self.kind == "ulp":
            return f"<= {self.max_ulps} ulp"
        return "exact"


# One forward of a network or a kernel (UNet, volumes, VAE, CLIP, RIFE) on the fixture's inputs.
NETWORK = Tolerance("float", atol=1e-4, rtol=1e-4,
                    rule="one forward: measured <= 1.3e-5 (RIFE's padded frames; VAE decode 1.0e-5); 8x margin")
# The original's SSIM map: its variance E[x^2] - E[x]^2 cancels in float32 at L = 255.
SSIM_MAP = Tolerance("float", atol=5e-3, rtol=1e-4,
                     rule="SSIM maps: measured <= 1.0e-3 (L = 255, ATen's default kernels); 5x margin")
# The guided noise of one DDIM step given the original's latent (teacher-forced): volumes, smoothing,
# frustum features and three UNet branches, which the random tiny network amplifies about 1000x.
GUIDED_STEP = Tolerance("float", atol=1e-2, rtol=1e-4,
                        rule="one guided step: measured <= 2.6e-3 (ATen's default kernels, oneDNN off); 4x margin")
# Free-running samples: rounding differences carried along the 4 steps of latents of size ~26.
LATENTS = Tolerance("float", atol=4e-2, rtol=1e-4,
                    rule="free-running latents (|x| ~ 26): measured <= 9.0e-3 (oneDNN off); 4x margin")
# Decoded images in [-1, 1] at the end of a free-running sample.
IMAGES = Tolerance("float", atol=4e-3, rtol=1e-4,
                   rule="decoded images: measured <= 9.2e-4 (oneDNN off); 4x margin")
# uint8 grids of the sampler's decoded images, made by truncation: rounding flips a few values a level.
UINT8 = Tolerance("uint8", max_levels=1, max_share=0.001,
                  rule="truncated uint8 grids: measured 1 level at <= 0.02% of values; the fixtures' rule")
# uint8 images truncated from a network's float output (RIFE's frames, the per-view-normalised
# confidence maps): a shift of 1e-5 moves every value that sat near a level boundary.
NETWORK_UINT8 = Tolerance("uint8", max_levels=1, max_share=0.03,
                          rule="RIFE files and confidence maps: measured 1 level at <= 0.79% of values (ATen's "
                               "default kernels); 4x margin")
# DDIM schedules computed in float32 from float64: a square root may round either way.
SCHEDULE = Tolerance("ulp", max_ulps=2, rule="float32 schedule: measured 1 ulp (sqrt rounding); 2x margin")
# Numbers in the converter's JSON (camera matrices printed by json).
JSON_NUMBERS = Tolerance("float", atol=1e-6, rule="JSON camera numbers: measured 2.7e-7 (numpy only)")
EXACT = Tolerance("exact", rule="integers, indices, shapes and deterministic image preparation")
