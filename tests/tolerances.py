"""The acceptance tolerances of ../shared/reference/README.md (section 7), shared by the parity tests."""
import numpy as np


def uint8_close(got: np.ndarray, ref: np.ndarray) -> None:
    """uint8 outputs made by truncation: within 1 everywhere, off by 1 at <= 0.1% of values."""
    assert got.shape == ref.shape
    diff = np.abs(got.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= 0.001 * diff.size
