"""Centred finite differences in float64, and the relative error used to compare gradients."""

import numpy as np


def numeric_gradient(f, array, eps=1e-6, indices=None):
    """d f() / d array by centred differences, perturbing ``array`` in place (restored afterwards).

    indices: an iterable of multi-indices to check (default: every entry); others are left 0.
    """
    grad = np.zeros_like(array)
    for index in (np.ndindex(array.shape) if indices is None else indices):
        old = array[index]
        array[index] = old + eps
        plus = f()
        array[index] = old - eps
        minus = f()
        array[index] = old
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(analytic, numeric):
    """||a - n|| / (||a|| + ||n||): the usual gradient-check measure (entries near zero don't dominate)."""
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / scale) if scale > 0 else 0.0


def random_indices(shape, count, rng):
    """``count`` distinct random multi-indices into an array of ``shape``."""
    flat = rng.choice(int(np.prod(shape)), size=min(count, int(np.prod(shape))), replace=False)
    return [np.unravel_index(i, shape) for i in flat]
