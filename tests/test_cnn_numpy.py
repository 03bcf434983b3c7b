"""cnn_numpy.py, the textbook layers: Conv2d and MaxPool2d against its loops and finite differences (float64),
the CNN against PyTorch. (The fast layers are checked against these in tests/test_fast_layers.py.)"""

import subprocess
import sys

import numpy as np
import pytest

from cnn_numpy import (Conv2d, MaxPool2d, cnn, conv_backward_loops, conv_forward_loops, maxpool_backward_loops,
                       maxpool_forward_loops)
from conftest import ROOT
from gradcheck import numeric_gradient, relative_error
from nn_numpy import SoftmaxCrossEntropy
from test_nn_numpy import check_layer, check_network

TOL = 1e-6


@pytest.mark.parametrize("n, c_in, c_out, size, padding", [(2, 1, 3, 5, 0), (3, 2, 4, 6, 1), (2, 3, 2, 4, 1),
                                                           (1, 4, 5, 7, 2)])
def test_conv2d_gradients_match_finite_differences(n, c_in, c_out, size, padding):
    rng = np.random.default_rng(size + padding)
    conv = Conv2d(c_in, c_out, 3, padding=padding, rng=rng, dtype=np.float64)
    check_layer(conv, rng.standard_normal((n, c_in, size, size)), rng)


def test_conv2d_output_shape_and_values_match_the_loops():
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 4))
    out = conv.forward(x)
    assert out.shape == (2, 3, 5, 4)
    np.testing.assert_allclose(out, conv_forward_loops(x, conv.W, conv.b, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k, padding", [(3, 1), (2, 0), (3, 2)])
def test_the_loop_references_themselves_match_finite_differences(k, padding):
    """The loops are the tests' reference for Conv2d and MaxPool2d, so they are checked on their own too."""
    rng = np.random.default_rng(k + padding)
    x, W, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((3, 2, k, k)), rng.standard_normal(3)
    dout = rng.standard_normal(conv_forward_loops(x, W, b, padding).shape)
    loss = lambda: float((conv_forward_loops(x, W, b, padding) * dout).sum())  # noqa: E731
    dx, dW, db = conv_backward_loops(x, W, dout, padding)
    for analytic, array in ((dx, x), (dW, W), (db, b)):
        assert relative_error(analytic, numeric_gradient(loss, array)) < 1e-6
    pooled_dout = rng.standard_normal((2, 2, 2, 2))
    pool_loss = lambda: float((maxpool_forward_loops(x) * pooled_dout).sum())  # noqa: E731
    assert relative_error(maxpool_backward_loops(x, pooled_dout), numeric_gradient(pool_loss, x)) < 1e-6


@pytest.mark.parametrize("k, padding, h, w", [(3, 0, 6, 5), (3, 2, 4, 5), (3, 3, 4, 4), (1, 1, 3, 4), (2, 1, 4, 3),
                                               (5, 2, 6, 7), (5, 4, 3, 3)])
def test_conv2d_any_kernel_and_padding_matches_a_naive_loop_and_finite_differences(k, padding, h, w):
    # Kernels 1 to 5, paddings 0 to 4, non-square inputs: every output pixel against the definition, every
    # gradient against finite differences.
    rng = np.random.default_rng(10 * k + padding)
    conv = Conv2d(2, 3, k, padding=padding, rng=rng, dtype=np.float64)
    conv.b[:] = rng.standard_normal(3)
    x = rng.standard_normal((3, 2, h, w))
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho, wo = h + 2 * padding - k + 1, w + 2 * padding - k + 1
    expected = np.array([[[[(padded[n, :, i:i + k, j:j + k] * conv.W[o]).sum() + conv.b[o] for j in range(wo)]
                           for i in range(ho)] for o in range(3)] for n in range(3)])
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-12, atol=1e-12)
    check_layer(conv, x, rng)


def test_maxpool_gradient_matches_finite_differences_without_ties():
    rng = np.random.default_rng(1)
    x = rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6).astype(np.float64) / 10  # distinct values
    check_layer(MaxPool2d(2), x, rng)


def test_maxpool_sends_the_gradient_of_tied_windows_to_the_first_maximum_only():
    pool = MaxPool2d(2)
    x = np.array([[[[1.0, 1.0, 0.0, 2.0],
                    [1.0, 1.0, 2.0, 2.0],
                    [5.0, 3.0, 0.0, 0.0],
                    [5.0, 5.0, 0.0, 0.0]]]])
    assert pool.forward(x).tolist() == [[[[1.0, 2.0], [5.0, 0.0]]]]
    dx = pool.backward(np.array([[[[10.0, 20.0], [30.0, 40.0]]]]))
    assert dx.tolist() == [[[[10.0, 0.0, 0.0, 20.0],
                             [0.0, 0.0, 0.0, 0.0],
                             [30.0, 0.0, 40.0, 0.0],
                             [0.0, 0.0, 0.0, 0.0]]]]


def test_maxpool_ties_match_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.integers(0, 3, (2, 3, 6, 7)).astype(np.float64)  # many ties; odd width is cropped
    dout = rng.standard_normal((2, 3, 3, 3))
    pool = MaxPool2d(2)
    out = pool.forward(x)
    dx = pool.backward(dout)
    tx = torch.from_numpy(x).requires_grad_()
    t_out = torch.nn.functional.max_pool2d(tx, 2)
    t_out.backward(torch.from_numpy(dout))
    np.testing.assert_array_equal(out, t_out.detach().numpy())
    np.testing.assert_array_equal(dx, tx.grad.numpy())


@pytest.mark.parametrize("n, c_in, c_out, h, w, k, padding", [(2, 3, 4, 5, 6, 3, 1), (3, 1, 2, 7, 5, 3, 0),
                                                               (1, 2, 3, 4, 4, 5, 2), (2, 2, 2, 3, 5, 1, 0)])
def test_conv2d_backward_matches_the_loops(n, c_in, c_out, h, w, k, padding):
    rng = np.random.default_rng(n * 100 + h * 10 + k)
    conv = Conv2d(c_in, c_out, k, padding=padding, rng=rng, dtype=np.float64)
    conv.b[:] = rng.standard_normal(c_out)
    x = rng.standard_normal((n, c_in, h, w))
    out = conv.forward(x)
    np.testing.assert_allclose(out, conv_forward_loops(x, conv.W, conv.b, padding), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    dx, dW, db = conv_backward_loops(x, conv.W, dout, padding)
    np.testing.assert_allclose(conv.backward(dout), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.dW, dW, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conv.db, db, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4, 7, 6), (2, 2, 4, 5), (1, 3, 2, 2)])
def test_maxpool_matches_the_plain_first_maximum_rule_with_ties_and_odd_sizes(shape):
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 3, shape).astype(np.float32)  # ties everywhere
    pool = MaxPool2d(2)
    out = pool.forward(x)
    np.testing.assert_array_equal(out, maxpool_forward_loops(x))
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(pool.backward(dout), maxpool_backward_loops(x, dout))


def test_cnn_has_the_reports_layer_order_and_shapes():
    model = cnn(np.random.default_rng(0))
    assert [type(layer).__name__ for layer in model.layers] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU",
                                                                 "MaxPool2d", "Flatten", "Linear"]
    x = np.zeros((2, 1, 28, 28), np.float32)
    shapes = []
    for layer in model.layers:
        x = layer.forward(x)
        shapes.append(x.shape[1:])
    assert shapes == [(16, 28, 28), (16, 28, 28), (16, 14, 14), (32, 14, 14), (32, 14, 14), (32, 7, 7), (1568,),
                      (10,)]


def test_whole_cnn_parameter_gradients_match_finite_differences():
    rng = np.random.default_rng(4)
    check_network(cnn(rng, np.float64), rng.random((2, 1, 28, 28)), np.array([7, 2]), rng, entries=25)


def torch_layout(layer, weight):
    """Our weight as PyTorch stores it, or back: Linear keeps (in, out) where torch keeps (out, in)."""
    return weight if weight.ndim == 4 else weight.T


def copy_into_torch(model, reference):
    import torch
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            if layer.params:
                reference[i].weight.copy_(torch.from_numpy(torch_layout(layer, layer.W)))
                reference[i].bias.copy_(torch.from_numpy(layer.b))


def test_cnn_matches_pytorch_logits_loss_and_gradients_in_float64():
    torch = pytest.importorskip("torch")
    import cnn_torch

    rng = np.random.default_rng(5)
    model, loss_fn = cnn(rng, np.float64), SoftmaxCrossEntropy()
    reference = cnn_torch.cnn().double()
    copy_into_torch(model, reference)
    x, y = rng.random((6, 1, 28, 28)), rng.integers(0, 10, 6)
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    t_logits = reference(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
    t_loss.backward()
    assert relative_error(logits, t_logits.detach().numpy()) < 1e-5
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    for i, layer in enumerate(model.layers):
        if layer.params:
            assert relative_error(layer.dW, torch_layout(layer, reference[i].weight.grad.numpy())) < 1e-5
            assert relative_error(layer.db, reference[i].bias.grad.numpy()) < 1e-5


def test_float32_cnn_stays_float32():
    rng = np.random.default_rng(7)
    model = cnn(rng)
    out = model.forward(rng.random((3, 1, 28, 28)).astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (3, 10)


def test_xavier_initialisation_bounds():
    model = cnn(np.random.default_rng(8), np.float64)
    conv2, linear = model.layers[3], model.layers[7]
    assert np.abs(conv2.W).max() <= np.sqrt(6 / (16 * 9 + 32 * 9))
    assert np.abs(linear.W).max() <= np.sqrt(6 / (1568 + 10))
    assert not conv2.b.any() and not linear.b.any()


def test_importing_cnn_numpy_does_not_import_torch():
    code = "import sys, cnn_numpy; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cnn_numpy_py_is_the_textbook_no_layout_tricks_threads_or_processes():
    """The file a student reads holds plain NumPy in C order; the tuned layers live in fast_cnn/ (issue 21)."""
    source = (ROOT / "cnn_numpy.py").read_text()
    for construct in ("as_strided", "PoolCorners", "mmap", "multiprocessing", "os.fork", "threadpoolctl",
                      "blas_threads"):
        assert construct not in source, construct
        assert construct not in (ROOT / "nn_numpy.py").read_text(), construct  # the file read first
    loops = source.index("def conv_forward_loops")
    assert loops < source.index("class Conv2d") < source.index("def cnn(")  # the loops are read first
    layers = source[source.index("class Conv2d"):source.index("def cnn(")]
    assert len(layers.splitlines()) <= 110  # Conv2d + MaxPool2d with their docstrings


def test_importing_cnn_numpy_loads_no_fast_path():
    code = "import sys, cnn_numpy; print(any(m == 'fast_cnn' or m.startswith('fast_cnn.') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_textbook_layers_are_not_the_committed_runs_configuration(capsys):
    """Issue 26: `python cnn_numpy.py --layers textbook` wrote over figures/cnn_numpy/ and checkpoints/."""
    from common.cli import parse_args
    import cnn_numpy

    args = parse_args(cnn_numpy.build_parser(), ["--layers", "textbook"])
    assert (args.out_dir, args.checkpoint) == ("runs", "runs/checkpoints/cnn_numpy.npz")
    assert "--layers textbook" in args.scratch_note
    assert parse_args(cnn_numpy.build_parser(), []).out_dir == "figures"
