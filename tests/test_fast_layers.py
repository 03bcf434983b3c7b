"""fast_cnn/layers.py against cnn_numpy.py's textbook layers, as CS231n checks its fast layers against the naive
ones: the same forward values and the same dx, dW, db (float64: relative error <= 1e-12, float32: <= 1e-5) on
random shapes, odd sizes, paddings 0-2 and ties in pooling; the same whole-CNN step on both paths; the same
accuracy after a short training run. Then the fast layers' own layout machinery."""

import math

import numpy as np
import pytest

import cnn_numpy
import fast_cnn
from common import harness_numpy
import nn_numpy
from fast_cnn import layers as fast
from fast_cnn.halves import Halves
from fast_cnn.layers import Conv2d, MaxPool2d, PoolCorners, blas_threads
from gradcheck import relative_error
from common.harness_numpy import one_blas_thread
from nn_numpy import ReLU

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}


def twin_convs(c_in, c_out, k, padding, dtype, seed, **fast_options):
    """A textbook Conv2d and a fast one with the same weights, drawn the same way from the same seed."""
    textbook = cnn_numpy.Conv2d(c_in, c_out, k, padding=padding, rng=np.random.default_rng(seed), dtype=dtype)
    tuned = Conv2d(c_in, c_out, k, padding=padding, rng=np.random.default_rng(seed), dtype=dtype, **fast_options)
    assert np.array_equal(textbook.W, tuned.W) and np.array_equal(textbook.b, tuned.b)
    textbook.b[:] = tuned.b[:] = np.random.default_rng(seed + 1).standard_normal(c_out)  # non-zero biases
    return textbook, tuned


def assert_close(a, b, dtype):
    assert np.asarray(a).shape == np.asarray(b).shape
    assert relative_error(a, b) <= TOLERANCE[dtype], relative_error(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, c_in, c_out, h, w, k, padding", [
    (3, 1, 16, 28, 28, 3, 1), (4, 16, 32, 14, 14, 3, 1), (2, 3, 5, 7, 5, 3, 1), (3, 2, 4, 6, 9, 3, 0),
    (1, 4, 3, 5, 5, 3, 2), (2, 2, 3, 8, 7, 5, 2), (5, 3, 2, 4, 6, 1, 0), (2, 2, 2, 3, 3, 2, 1)])
def test_fast_conv2d_gives_the_textbook_values_and_gradients(n, c_in, c_out, h, w, k, padding, dtype):
    textbook, tuned = twin_convs(c_in, c_out, k, padding, dtype, seed=n + h + k)
    rng = np.random.default_rng(h * w)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    out = textbook.forward(x)
    assert_close(tuned.forward(x), out, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    assert_close(tuned.backward(dout), textbook.backward(dout), dtype)
    assert_close(tuned.dW, textbook.dW, dtype)
    assert_close(tuned.db, textbook.db, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, c_in, c_out, size, padding", [(3, 1, 4, 8, 1), (2, 2, 3, 6, 0), (1, 3, 2, 4, 2),
                                                          (2, 1, 3, 7, 1)])
def test_fast_first_conv_and_pool_give_the_textbook_conv_relu_pool(n, c_in, c_out, size, padding, dtype):
    """The first layer as the fast CNN builds it (no input gradient, corners for the pooling, pool before ReLU)
    against the report's conv -> ReLU -> pool in the textbook layers; odd output sizes fall back to plain."""
    textbook, tuned = twin_convs(c_in, c_out, 3, padding, dtype, seed=size, input_grad=False, pool_corners=True)
    rng = np.random.default_rng(size)
    x = rng.standard_normal((n, c_in, size, size)).astype(dtype)
    book = [textbook, ReLU(), cnn_numpy.MaxPool2d(2)]
    quick = [tuned, MaxPool2d(2), ReLU()]
    out_book, out_quick = x, x
    for a, b in zip(book, quick):
        out_book, out_quick = a.forward(out_book), b.forward(out_quick)
    assert_close(out_quick, out_book, dtype)
    dout = rng.standard_normal(out_book.shape).astype(dtype)
    d_book, d_quick = dout, dout
    for a, b in zip(reversed(book), reversed(quick)):
        d_book, d_quick = a.backward(d_book), b.backward(d_quick)
    assert d_quick is None  # no input gradient for a first layer
    assert_close(tuned.dW, textbook.dW, dtype)
    assert_close(tuned.db, textbook.db, dtype)


@pytest.mark.parametrize("shape", [(3, 4, 8, 6), (2, 3, 7, 5), (1, 2, 2, 3)])
def test_fast_maxpool_gives_the_textbook_values_and_gradients_on_ties(shape):
    """Pooling does no arithmetic, so the two must agree exactly, ties (first maximum wins) included."""
    rng = np.random.default_rng(sum(shape))
    x = rng.integers(-2, 3, shape).astype(np.float32)
    textbook, tuned = cnn_numpy.MaxPool2d(2), MaxPool2d(2)
    out = textbook.forward(x)
    np.testing.assert_array_equal(tuned.forward(x), out)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_array_equal(tuned.backward(dout), textbook.backward(dout))


def cnn_pair(dtype, seed=0, init="xavier"):
    textbook = cnn_numpy.cnn(np.random.default_rng(seed), dtype, init)
    tuned = fast.cnn(np.random.default_rng(seed), dtype, init)
    return textbook, tuned


@pytest.mark.parametrize("init", ["xavier", "pytorch"])
def test_both_paths_start_from_the_same_weights_under_the_same_names(init):
    textbook, tuned = cnn_pair(np.float32, seed=3, init=init)
    a, b = textbook.state_dict(), tuned.state_dict()
    assert a.keys() == b.keys() == {"0.W", "0.b", "3.W", "3.b", "7.W", "7.b"}
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def whole_step(model, x, y):
    loss_fn = nn_numpy.SoftmaxCrossEntropy()
    logits = model.forward(x)
    loss = loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())
    return logits, loss, {f"{i}.d{name}": getattr(layer, "d" + name).copy()
                          for i, layer in enumerate(model.layers) for name in layer.params}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_whole_cnn_step_gives_the_same_logits_loss_and_gradients_on_both_paths(dtype):
    textbook, tuned = cnn_pair(dtype, init="pytorch")  # non-zero biases
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 6)
    book, quick = whole_step(textbook, x, y), whole_step(tuned, x, y)
    assert_close(quick[0], book[0], dtype)
    assert abs(quick[1] - book[1]) <= TOLERANCE[dtype] * abs(book[1])
    for key in book[2]:
        assert_close(quick[2][key], book[2][key], dtype)


@pytest.mark.parametrize("processes", [1, 2])
def test_the_fast_paths_halves_give_the_textbook_batchs_gradients(processes):
    """As cnn_numpy.py --layers fast trains: a batch of 19 as two halves, in pieces of 8, maybe in a worker."""
    textbook, tuned = cnn_pair(np.float64, init="pytorch")
    rng = np.random.default_rng(2)
    images, labels = rng.random((40, 1, 28, 28)), rng.integers(0, 10, 40)
    batch = rng.permutation(40)[:19]
    book = whole_step(textbook, images[batch], labels[batch])
    with Halves(tuned, images, labels, [images], processes) as halves:
        loss, correct = halves.step(batch)
        logits = halves.predict(images)
        grads = {f"{i}.d{name}": getattr(layer, "d" + name).copy()
                 for i, layer in enumerate(tuned.layers) for name in layer.params}
    assert abs(loss - book[1]) <= 1e-12 * abs(book[1])
    assert correct == np.count_nonzero(book[0].argmax(axis=1) == labels[batch])
    for key in book[2]:
        assert_close(grads[key], book[2][key], np.float64)
    assert_close(logits, harness_numpy.predict(textbook, images), np.float64)


def test_one_short_training_run_ends_within_a_tenth_of_a_point_on_both_paths(mnist_dir):
    """1 epoch on 2,000 images at the quick run's settings, same seed: the paths differ only in rounding."""
    from common.data import load_model_inputs
    from common.run import EpochProgress

    x_train, y_train, x_test, y_test, _ = load_model_inputs(mnist_dir, 2000, None)
    x_train, x_test = x_train.reshape(-1, 1, 28, 28), x_test.reshape(-1, 1, 28, 28)
    accuracy = {}
    for path in ("textbook", "fast"):
        textbook, tuned = cnn_pair(np.float32, seed=0)
        model = textbook if path == "textbook" else tuned
        optimizer, order = nn_numpy.SGD(model, 0.05), np.random.default_rng(1).permutation(2000)
        progress = EpochProgress(1, 1, math.ceil(2000 / 8), quiet=True, lr=0.05)
        with one_blas_thread():
            if path == "textbook":
                nn_numpy.train_epoch(model, nn_numpy.SoftmaxCrossEntropy(), optimizer, x_train, y_train, 8, order,
                                     progress)
                logits = harness_numpy.predict(model, x_test)
            else:
                with Halves(model, x_train, y_train, [x_test]) as halves:
                    fast_cnn.train_epoch(halves, optimizer, 8, order, progress)
                    logits = halves.predict(x_test)
        accuracy[path] = 100 * np.mean(logits.argmax(axis=1) == y_test)
    assert accuracy["textbook"] >= 85
    assert abs(accuracy["textbook"] - accuracy["fast"]) <= 0.1, accuracy


# --- the fast layers' own layout machinery ------------------------------------------------------------

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
    np.testing.assert_array_equal(pool.backward(dout), cnn_numpy.maxpool_backward_loops(x, dout))


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
    from fast_cnn.layers import Flatten  # nn_numpy.Flatten returns C order: the textbook needs no more
    x = np.ascontiguousarray(np.arange(2 * 3 * 4 * 5.0).reshape(2, 4, 5, 3)).transpose(0, 3, 1, 2)  # channel-last
    flatten = Flatten()
    flat = flatten.forward(x)
    dx = flatten.backward(flat * 2)
    np.testing.assert_array_equal(dx, x * 2)
    assert dx.strides == x.strides


def test_blas_threads_sets_the_count_inside_and_restores_it_after():
    from threadpoolctl import threadpool_info, threadpool_limits

    counts = lambda: [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]  # noqa: E731
    with threadpool_limits(2, user_api="blas"):
        with blas_threads(1):
            assert counts() and set(counts()) == {1}
            with blas_threads(1):  # nested: nothing to change
                assert set(counts()) == {1}
            assert set(counts()) == {1}
        assert set(counts()) == {2}
