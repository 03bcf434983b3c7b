"""benchmarks/textbook_tries.py: the variants it times compute what the kept textbook layers compute, ties
included, so its timings compare like with like. (Its timings are never checked here.)"""

import importlib.util

import numpy as np

from conftest import ROOT, run_script
from cnn_numpy import Conv2d


def tries():
    spec = importlib.util.spec_from_file_location("textbook_tries", ROOT / "benchmarks" / "textbook_tries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_variants_equal_the_kept_layers_on_ties_and_odd_shapes():
    t, rng = tries(), np.random.default_rng(3)
    x = rng.integers(0, 3, (3, 2, 6, 8)).astype(np.float64)   # many equal values in a window
    dout = rng.standard_normal((3, 2, 3, 4))
    (y1, dx1), (y2, dx2) = t.pool_kept(x, dout), t.pool_reshape_max(x, dout)
    assert np.array_equal(y1, y2) and np.array_equal(dx1, dx2)
    for c_in, k, p in ((1, 3, 1), (3, 5, 2), (2, 1, 0)):
        layer = Conv2d(c_in, 4, k, padding=p, rng=rng, dtype=np.float64)
        x = rng.standard_normal((2, c_in, 7, 9))
        layer.forward(x)
        assert np.array_equal(layer.cols, t.im2col_sliding(layer, x))
        assert np.array_equal(t.im2col_kept_only(layer, x), t.im2col_sliding(layer, x))


def test_it_runs_and_prints_each_comparison():
    result = run_script("benchmarks/textbook_tries.py", "--batch-size", "2", "--repeats", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("MaxPool2d on") == 2 and result.stdout.count("im2col of") == 2
