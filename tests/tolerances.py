"""uint8 comparisons for tests outside test_parity.py, with the parity suite's rule (tools/parity/tolerances.py)."""
import numpy as np

from tools.parity.compare import compare
from tools.parity.tolerances import UINT8, Tolerance


def uint8_close(got: np.ndarray, ref: np.ndarray, tolerance: Tolerance = UINT8) -> None:
    """uint8 outputs made by truncation, within ``tolerance`` (default: 1 level at <= 0.1% of values)."""
    d = compare("", "uint8", got, ref, tolerance)
    assert d.ok, f"max diff {d.max_abs:g} levels at {d.share:.3%} of values ({tolerance.describe()})"
