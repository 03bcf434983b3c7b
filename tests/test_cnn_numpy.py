"""cnn_numpy.py: Conv2d and MaxPool2d against finite differences (float64), the CNN against PyTorch."""

import subprocess
import sys

import numpy as np
import pytest

from cnn_numpy import Conv2d, MaxPool2d, PoolCorners, cnn
from conftest import ROOT
from gradcheck import relative_error
from nn_numpy import ReLU, SoftmaxCrossEntropy
from test_nn_numpy import check_layer, check_network

TOL = 1e-6


@pytest.mark.parametrize("n, c_in, c_out, size, padding", [(2, 1, 3, 5, 0), (3, 2, 4, 6, 1), (2, 3, 2, 4, 1),
                                                           (1, 4, 5, 7, 2)])
def test_conv2d_gradients_match_finite_differences(n, c_in, c_out, size, padding):
    rng = np.random.default_rng(size + padding)
    conv = Conv2d(c_in, c_out, 3, padding=padding, rng=rng, dtype=np.float64)
    check_layer(conv, rng.standard_normal((n, c_in, size, size)), rng)


def test_conv2d_output_shape_and_values_match_a_naive_loop():
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, 3, padding=1, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 5, 4))
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expected = np.zeros((2, 3, 5, 4))
    for n in range(2):
        for o in range(3):
            for i in range(5):
                for j in range(4):
                    expected[n, o, i, j] = (padded[n, :, i:i + 3, j:j + 3] * conv.W[o]).sum() + conv.b[o]
    np.testing.assert_allclose(conv.forward(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k, padding, h, w", [(3, 0, 6, 5), (3, 2, 4, 5), (3, 3, 4, 4), (1, 1, 3, 4), (2, 1, 4, 3),
                                               (5, 2, 6, 7), (5, 4, 3, 3)])
def test_conv2d_any_kernel_and_padding_matches_a_naive_loop_and_finite_differences(k, padding, h, w):
    # Conv2d lays rows and images out flat without padding between them (row_layout) and zeroes the entries
    # whose windows cross a row's or an image's edge (wraps); outputs wider than the input need extra columns,
    # which must get no gradient. A wrap one position off, or a layout one row short, fails here.
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


def test_conv2d_in_blocks_of_one_image_matches_one_block():
    """Conv2d splits a batch into cache-sized blocks of images; the split must not change any result."""
    rng = np.random.default_rng(9)
    whole = Conv2d(3, 4, 3, padding=1, rng=rng, dtype=np.float64)
    blocked = Conv2d(3, 4, 3, padding=1, rng=rng, dtype=np.float64)
    blocked.W, blocked.b = whole.W.copy(), whole.b.copy()
    blocked.BLOCK_BYTES = 1  # one image per block
    x = rng.standard_normal((5, 3, 6, 7))
    dout = rng.standard_normal((5, 4, 6, 7))
    assert len(blocked.blocks(5, 1)) == 5 and len(whole.blocks(5, 1)) == 1
    np.testing.assert_allclose(blocked.forward(x), whole.forward(x), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(blocked.backward(dout), whole.backward(dout), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(blocked.dW, whole.dW, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(blocked.db, whole.db, rtol=1e-13, atol=1e-13)


def first_maximum_pool_backward(x, dout):
    """The plain version: one window at a time, the gradient to its first maximum in row-major order."""
    dx = np.zeros_like(x)
    for n, c, i, j in np.ndindex(dout.shape):
        window = x[n, c, 2 * i:2 * i + 2, 2 * j:2 * j + 2]
        a, b = np.unravel_index(np.argmax(window), (2, 2))  # argmax returns the first maximum
        dx[n, c, 2 * i + a, 2 * j + b] = dout[n, c, i, j]
    return dx


@pytest.mark.parametrize("x_order, dout_order", [("C", "C"), ("channel-major", "C"),
                                                 ("channel-major", "channel-major"), ("F", "C")])
def test_maxpool_backward_matches_the_plain_first_maximum_rule(x_order, dout_order):
    """Backward picks the winner from the row maxima kept by forward; any memory order of x and dout."""
    rng = np.random.default_rng(10)
    layout = {"C": np.ascontiguousarray, "F": np.asfortranarray,
              "channel-major": lambda a: np.ascontiguousarray(a.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)}
    x = layout[x_order](rng.integers(-2, 3, (3, 4, 7, 6)).astype(np.float32))  # ties everywhere, odd height
    dout = layout[dout_order](rng.standard_normal((3, 4, 3, 3)).astype(np.float32))
    pool = MaxPool2d(2)
    pool.forward(x)
    np.testing.assert_array_equal(pool.backward(dout), first_maximum_pool_backward(x, dout))


def test_pooling_then_relu_equals_relu_then_pooling_forward_and_backward():
    """cnn() pools before ReLU because the two orders agree exactly, gradients included, even on ties."""
    rng = np.random.default_rng(11)
    x = rng.integers(-2, 3, (2, 3, 6, 8)).astype(np.float64)  # ties, zeros and negatives
    dout = rng.standard_normal((2, 3, 3, 4))
    pool_first, relu_after = MaxPool2d(2), ReLU()
    relu_first, pool_after = ReLU(), MaxPool2d(2)
    np.testing.assert_array_equal(relu_after.forward(pool_first.forward(x)),
                                  pool_after.forward(relu_first.forward(x)))
    np.testing.assert_array_equal(pool_first.backward(relu_after.backward(dout)),
                                  relu_first.backward(pool_after.backward(dout)))


def test_layers_accept_any_memory_order():
    """Conv2d returns channel-last arrays; the same layers must also work on plain C-ordered input."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 6, 6))
    for layer in (Conv2d(3, 2, 3, padding=1, rng=rng, dtype=np.float64), MaxPool2d(2)):
        a = layer.forward(x)
        b = layer.forward(np.asfortranarray(x))
        np.testing.assert_array_equal(a, b)


def integer_conv_pair(c_in, c_out, padding, seed):
    """A Conv2d with pool_corners and a plain one with the same small-integer weights: in float64 every sum is
    then exact, whatever the order, so the two must agree bit for bit, ties in the pooling included."""
    rng = np.random.default_rng(seed)
    corners = Conv2d(c_in, c_out, 3, padding=padding, rng=rng, dtype=np.float64, input_grad=False,
                     pool_corners=True)
    plain = Conv2d(c_in, c_out, 3, padding=padding, rng=rng, dtype=np.float64, input_grad=False)
    corners.W = plain.W = rng.integers(-2, 3, plain.W.shape).astype(np.float64)
    corners.b = plain.b = rng.integers(-2, 3, plain.b.shape).astype(np.float64)
    return corners, plain, rng


@pytest.mark.parametrize("n, c_in, c_out, size, padding", [(3, 1, 4, 8, 1), (2, 2, 3, 6, 0), (1, 3, 2, 4, 2)])
def test_pool_corners_give_the_plain_conv_and_pool_bit_for_bit(n, c_in, c_out, size, padding):
    corners, plain, rng = integer_conv_pair(c_in, c_out, padding, size)
    x = rng.integers(0, 3, (n, c_in, size, size)).astype(np.float64)  # zeros and ties everywhere
    out = corners.forward(x)
    assert isinstance(out, PoolCorners) and out.shape == plain.forward(x).shape
    np.testing.assert_array_equal(np.asarray(out), plain.forward(x))
    fast, slow = MaxPool2d(2), MaxPool2d(2)
    np.testing.assert_array_equal(fast.forward(corners.forward(x)), slow.forward(plain.forward(x)))
    dout = rng.integers(-3, 4, (n, c_out, size // 2 + padding - 1, size // 2 + padding - 1)).astype(np.float64)
    dx = fast.backward(dout)
    assert isinstance(dx, PoolCorners)
    np.testing.assert_array_equal(np.asarray(dx), slow.backward(dout))
    assert corners.backward(dx) is None and plain.backward(slow.backward(dout)) is None
    np.testing.assert_array_equal(corners.dW, plain.dW)
    np.testing.assert_array_equal(corners.db, plain.db)


def test_pool_corners_work_with_any_layer_in_between_and_odd_sizes():
    """ReLU before pooling gets a plain array (np.asarray) and gives Conv2d a plain gradient back; an odd-sized
    output is returned plain, as pool_corners=False would."""
    corners, plain, rng = integer_conv_pair(2, 3, 1, 0)
    for size, cornered in ((6, True), (5, False)):
        x = rng.integers(0, 3, (2, 2, size, size)).astype(np.float64)
        layers = {}
        for name, conv in (("corners", corners), ("plain", plain)):
            relu, pool = ReLU(), MaxPool2d(2)
            out = pool.forward(relu.forward(conv.forward(x)))
            dout = np.arange(out.size, dtype=np.float64).reshape(out.shape) % 5 - 2
            conv.backward(relu.backward(pool.backward(dout)))
            layers[name] = out, conv.dW.copy(), conv.db.copy()
        assert corners.cornered is cornered
        for a, b in zip(layers["corners"], layers["plain"]):
            np.testing.assert_array_equal(a, b)


def test_pool_corners_need_a_layer_without_input_gradient():
    with pytest.raises(ValueError, match="input_grad=False"):
        Conv2d(1, 2, 3, padding=1, pool_corners=True)


def test_flatten_gives_its_gradient_back_in_the_memory_order_of_its_input():
    from nn_numpy import Flatten
    x = np.ascontiguousarray(np.arange(2 * 3 * 4 * 5.0).reshape(2, 4, 5, 3)).transpose(0, 3, 1, 2)  # channel-last
    flatten = Flatten()
    flat = flatten.forward(x)
    dx = flatten.backward(flat * 2)
    np.testing.assert_array_equal(dx, x * 2)
    assert dx.strides == x.strides


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
