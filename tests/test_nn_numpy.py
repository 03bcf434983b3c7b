"""nn_numpy.py: every layer's backward against finite differences (float64) and the MLP against PyTorch."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from gradcheck import numeric_gradient, random_indices, relative_error
from nn_numpy import SGD, Flatten, Linear, ReLU, Sequential, SoftmaxCrossEntropy, mlp

TOL = 1e-6


def check_layer(layer, x, rng):
    """Backward of ``layer`` at ``x`` for the loss sum(forward(x) * R): dx and each parameter gradient."""
    weights = rng.standard_normal(layer.forward(x).shape)
    loss = lambda: float((layer.forward(x) * weights).sum())  # noqa: E731
    layer.forward(x)
    dx = layer.backward(weights)
    assert relative_error(dx, numeric_gradient(loss, x)) < TOL
    for name in layer.params:
        layer.forward(x)
        layer.backward(weights)
        analytic = getattr(layer, "d" + name).copy()
        assert relative_error(analytic, numeric_gradient(loss, getattr(layer, name))) < TOL, name


def test_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(0)
    check_layer(Linear(7, 5, rng, np.float64), rng.standard_normal((4, 7)), rng)


def test_relu_gradient_matches_finite_differences_away_from_the_kink():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 9))
    x[np.abs(x) < 1e-3] = 0.5  # centred differences are undefined at 0
    check_layer(ReLU(), x, rng)


def test_relu_gradient_at_zero_is_zero_like_pytorch():
    relu = ReLU()
    relu.forward(np.array([[-1.0, 0.0, 2.0]]))
    assert relu.backward(np.ones((1, 3))).tolist() == [[0.0, 0.0, 1.0]]


def test_softmax_cross_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    logits, labels = rng.standard_normal((5, 10)) * 3, rng.integers(0, 10, 5)
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(logits, labels)
    analytic = loss_fn.backward()
    numeric = numeric_gradient(lambda: float(loss_fn.forward(logits, labels)), logits)
    assert relative_error(analytic, numeric) < TOL


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    loss_fn = SoftmaxCrossEntropy()
    loss = loss_fn.forward(np.array([[1000.0, 0.0, -1000.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0)
    assert np.isfinite(loss_fn.backward()).all()


def check_network(model, x, y, rng, entries):
    """Every parameter's gradient of the mean cross-entropy, on ``entries`` random entries per parameter."""
    loss_fn = SoftmaxCrossEntropy()
    loss = lambda: float(loss_fn.forward(model.forward(x), y))  # noqa: E731
    loss()
    model.backward(loss_fn.backward())
    for layer, name in model.parameters():
        analytic = getattr(layer, "d" + name).copy()
        indices = random_indices(analytic.shape, entries, rng)
        numeric = numeric_gradient(loss, getattr(layer, name), indices=indices)
        assert relative_error([analytic[i] for i in indices], [numeric[i] for i in indices]) < TOL, name


def test_whole_mlp_parameter_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    check_network(mlp(rng, np.float64), rng.random((3, 28, 28)), np.array([3, 1, 4]), rng, entries=40)


def test_flatten_round_trips_shapes():
    flat = Flatten()
    x = np.arange(24.0).reshape(2, 3, 4)
    assert flat.forward(x).shape == (2, 12)
    assert flat.backward(np.ones((2, 12))).shape == (2, 3, 4)


def test_layers_keep_the_dtype_they_were_built_with():
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        model = mlp(rng, dtype)
        out = model.forward(rng.random((2, 28, 28)).astype(dtype))
        assert out.dtype == dtype
        model.backward(np.ones_like(out))
        assert all(getattr(layer, "d" + name).dtype == dtype for layer, name in model.parameters())


def test_sgd_steps_every_parameter_by_minus_lr_times_its_gradient():
    rng = np.random.default_rng(5)
    model = Sequential(Linear(3, 2, rng, np.float64), ReLU(), Linear(2, 2, rng, np.float64))
    before = model.state_dict()
    for layer, name in model.parameters():
        setattr(layer, "d" + name, np.full_like(getattr(layer, name), 2.0))
    SGD(model, 0.25).step()
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(value, before[key] - 0.5)


def test_state_dict_round_trip_and_shape_check():
    rng = np.random.default_rng(6)
    a, b = mlp(rng), mlp(rng)
    b.load_state_dict(a.state_dict())
    x = rng.random((2, 28, 28)).astype(np.float32)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    bad = a.state_dict()
    bad["1.W"] = bad["1.W"][:10]
    with pytest.raises(Exception, match=r"1.W has shape \(10, 128\), this model needs \(784, 128\)"):
        b.load_state_dict(bad)


def test_mlp_matches_pytorch_in_float64():
    torch = pytest.importorskip("torch")
    import nn_torch

    rng = np.random.default_rng(7)
    model, loss_fn = mlp(rng, np.float64), SoftmaxCrossEntropy()
    reference = nn_torch.mlp().double()
    with torch.no_grad():
        for i in (1, 3, 5):
            reference[i].weight.copy_(torch.from_numpy(model.layers[i].W.T))
            reference[i].bias.copy_(torch.from_numpy(model.layers[i].b))
    x, y = rng.random((8, 28, 28)), rng.integers(0, 10, 8)
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    t_logits = reference(torch.from_numpy(x))
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y))
    t_loss.backward()
    assert relative_error(logits, t_logits.detach().numpy()) < TOL
    assert loss == pytest.approx(t_loss.item(), rel=TOL)
    for i in (1, 3, 5):
        assert relative_error(model.layers[i].dW, reference[i].weight.grad.numpy().T) < TOL
        assert relative_error(model.layers[i].db, reference[i].bias.grad.numpy()) < TOL


def test_importing_nn_numpy_does_not_import_torch():
    code = "import sys, nn_numpy; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_normal_initialisation_is_the_originals():
    """--init normal: W ~ N(0, 0.1^2), b = 0, as the original's nn_pure_python.LinearLayer."""
    model = mlp(np.random.default_rng(0), np.float64, "normal")
    first = model.layers[1]
    assert first.W.shape == (784, 128) and first.W.dtype == np.float64
    assert abs(first.W.std() - 0.1) < 0.002 and abs(first.W.mean()) < 0.002
    assert all(not layer.b.any() for layer in model.layers if layer.params)


def test_nn_numpy_defaults_follow_the_originals_procedure():
    import nn_numpy

    args = nn_numpy.build_parser().parse_args([])
    assert (args.init, args.shuffle, args.dtype_default) == ("normal", "once", "float64")
