"""nn_numpy.py's SGD (with momentum) and Adam against torch.optim, step for step, in float64, on both networks."""

import numpy as np
import pytest

from cnn_numpy import cnn
from gradcheck import relative_error
from nn_numpy import SGD, Adam, SoftmaxCrossEntropy, mlp
from test_cnn_numpy import copy_into_torch, torch_layout

STEPS = 25
TOL = 1e-10
INPUT_SHAPES = {"mlp": (28, 28), "cnn": (1, 28, 28)}


def twins(network, seed):
    """Our network in float64 and its PyTorch twin holding the same weights."""
    import cnn_torch
    import nn_torch

    ours = {"mlp": mlp, "cnn": cnn}[network](np.random.default_rng(seed), np.float64)
    reference = {"mlp": nn_torch.mlp, "cnn": cnn_torch.cnn}[network]().double()
    copy_into_torch(ours, reference)
    return ours, reference


def max_parameter_error(model, reference):
    """The largest relative error over the parameters, each compared as a whole tensor."""
    errors = []
    for i, layer in enumerate(model.layers):
        if layer.params:
            errors.append(relative_error(layer.W, torch_layout(layer, reference[i].weight.detach().numpy())))
            errors.append(relative_error(layer.b, reference[i].bias.detach().numpy()))
    return max(errors)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
@pytest.mark.parametrize("name, ours_cls, kwargs", [
    ("plain sgd", SGD, {"lr": 0.05}),
    ("sgd momentum 0.9", SGD, {"lr": 0.01, "momentum": 0.9}),
    ("adam", Adam, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}),
])
def test_optimizer_matches_torch_step_for_step_in_float64(network, name, ours_cls, kwargs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    model, reference = twins(network, seed=12)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = ours_cls(model, **kwargs)
    t_optimizer = (torch.optim.SGD if ours_cls is SGD else torch.optim.Adam)(reference.parameters(), **kwargs)
    for step in range(1, STEPS + 1):
        x, y = rng.random((16, *INPUT_SHAPES[network])), rng.integers(0, 10, 16)
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        optimizer.step()
        t_optimizer.zero_grad()
        torch.nn.functional.cross_entropy(reference(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        t_optimizer.step()
        error = max_parameter_error(model, reference)
        assert error <= TOL, f"{name}, {network}: relative error {error:.2e} after step {step}"
    assert max_parameter_error(model, twins(network, seed=12)[1]) > 1e-4  # the weights did move


def plain_sgd_step(model, lr):
    """Today's rule before momentum existed, written out: p -= lr * dp."""
    for layer, name in model.parameters():
        param = getattr(layer, name)
        param -= param.dtype.type(lr) * getattr(layer, "d" + name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_momentum_zero_is_plain_sgd_bit_for_bit_and_keeps_no_buffers(dtype):
    rng = np.random.default_rng(13)
    a, b = mlp(np.random.default_rng(14), dtype), mlp(np.random.default_rng(14), dtype)
    loss_fn = SoftmaxCrossEntropy()
    optimizer = SGD(a, 0.1, momentum=0.0)
    for _ in range(10):
        x, y = rng.random((32, 28, 28)).astype(dtype), rng.integers(0, 10, 32)
        for model in (a, b):
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
        optimizer.step()
        plain_sgd_step(b, 0.1)
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])
    assert optimizer.buffers == {}


@pytest.mark.parametrize("make", [lambda m: SGD(m, 0.01, momentum=0.9), lambda m: Adam(m)])
def test_optimizers_update_in_place_and_keep_float32_state_in_float32(make):
    rng = np.random.default_rng(15)
    model = cnn(rng)
    params = [getattr(layer, name) for layer, name in model.parameters()]
    optimizer = make(model)
    loss_fn = SoftmaxCrossEntropy()
    for _ in range(2):
        loss_fn.forward(model.forward(rng.random((4, 1, 28, 28)).astype(np.float32)), rng.integers(0, 10, 4))
        model.backward(loss_fn.backward())
        optimizer.step()
    assert all(getattr(layer, name) is p for (layer, name), p in zip(model.parameters(), params))
    assert all(p.dtype == np.float32 for p in params)
    state = list(optimizer.buffers.values()) if isinstance(optimizer, SGD) else [
        *optimizer.m.values(), *optimizer.v.values()]
    assert len(state) == len(params) * (1 if isinstance(optimizer, SGD) else 2)
    assert all(s.dtype == np.float32 for s in state)


def test_adam_first_step_moves_each_weight_by_about_lr_against_its_gradient_sign():
    # After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps) = lr * sign(g).
    rng = np.random.default_rng(16)
    model = mlp(rng, np.float64)
    before = model.state_dict()
    loss_fn = SoftmaxCrossEntropy()
    loss_fn.forward(model.forward(rng.random((8, 28, 28))), rng.integers(0, 10, 8))
    model.backward(loss_fn.backward())
    Adam(model, lr=0.01).step()
    for i, layer in enumerate(model.layers):
        for name in layer.params:
            grad = getattr(layer, "d" + name)
            expected = before[f"{i}.{name}"] - 0.01 * grad / (np.abs(grad) + 1e-8)
            np.testing.assert_allclose(getattr(layer, name), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("make, message", [
    (lambda m: SGD(m, -0.1), "SGD: lr must be a finite number >= 0, got -0.1"),
    (lambda m: SGD(m, float("nan")), "SGD: lr must be a finite number >= 0, got nan"),
    (lambda m: SGD(m, 0.1, momentum=-0.5), "SGD: momentum must be a finite number >= 0, got -0.5"),
    (lambda m: Adam(m, lr=float("inf")), "Adam: lr must be a finite number >= 0, got inf"),
    (lambda m: Adam(m, betas=(0.9, 1.0)), r"Adam: betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"),
    (lambda m: Adam(m, betas=(0.9,)), r"Adam: betas must be two numbers in \[0, 1\), got \(0.9,\)"),
    (lambda m: Adam(m, eps=-1e-8), "Adam: eps must be a finite number >= 0, got -1e-08"),
])
def test_optimizers_refuse_invalid_arguments(make, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        make(mlp(np.random.default_rng(17)))
