"""One BLAS thread for NumPy's matrix products while the NumPy scripts train and evaluate.

    python nn_numpy.py            # nn_numpy.fit() and the evaluation run inside one_blas_thread()
    python benchmarks/bench.py    # times the NumPy models the same way

Not torch: the NumPy scripts import this, and they never import a deep-learning framework.
"""

from threadpoolctl import threadpool_limits


def one_blas_thread():
    """A context in which NumPy's matrix products run on one thread. Why: the layers' products are small, and on a
    shared 2-core machine a second BLAS thread waits for a busy core (benchmarks/README.md)."""
    return threadpool_limits(1, user_api="blas")
