"""Small statistics the modules report beside their test scores."""

from __future__ import annotations

import numpy as np


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of `values` (sample std / sqrt n); 0 for fewer than two values."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0
