"""drawing/preprocess.py: a drawing becomes a 28x28 image prepared the way MNIST's digits were."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT

from common import harness_numpy
import nn_numpy
from common.data import load_mnist
from drawing.preprocess import CENTRE, area_weights, preprocess

SEVEN = [(0.0, 0.0), (1.0, 0.0), (0.35, 1.6)]  # a "7" as a polyline, in units of its width: (x, y)


def draw_strokes(size, points, width, supersample=3):
    """A (size, size) canvas, white ink on black, with the polyline through ``points`` (pixels, (x, y))
    drawn ``width`` pixels wide with round ends, anti-aliased by supersampling as a browser canvas does."""
    n = size * supersample
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / supersample
    ink = np.zeros((n, n), dtype=bool)
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
        ink |= np.hypot(x - x0 - t * dx, y - y0 - t * dy) <= width / 2
    return ink.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def seven(size, scale, left, top):
    return draw_strokes(size, [(left + scale * px, top + scale * py) for px, py in SEVEN], 0.18 * scale)


def test_the_same_shape_small_in_a_corner_and_large_in_the_middle_gives_nearly_the_same_image():
    small = seven(280, 50, 12, 10)       # 50 x 80 pixels, top-left corner
    large = seven(280, 140, 70, 25)      # 140 x 224 pixels, in the middle
    a, b = preprocess(small), preprocess(large)
    assert np.abs(a - b).mean() < 0.02 and np.abs(a - b).max() < 0.35
    # Without the preprocessing (a plain 10x shrink of the canvas) the two are far apart: the test can fail.
    shrink = area_weights(280, 28)
    naive_small, naive_large = shrink @ small @ shrink.T, shrink @ large @ shrink.T
    assert np.abs(naive_small - naive_large).mean() > 10 * np.abs(a - b).mean()


@pytest.mark.parametrize("canvas", [np.zeros((280, 280)),                       # nothing drawn
                                    np.full((280, 280), 0.05),                  # a faint tint, no ink
                                    draw_strokes(280, [(140, 140), (141, 141)], 20),   # one click
                                    draw_strokes(28, [(3.5, 3.5), (3.6, 3.6)], 1.2)],  # a speck on 28x28
                         ids=["empty", "faint", "one-click", "speck"])
def test_an_empty_or_near_empty_canvas_gives_no_image(canvas):
    assert preprocess(canvas) is None


def test_the_digit_fills_20_pixels_keeping_its_aspect_ratio_centred_by_its_mass():
    image = preprocess(seven(280, 60, 150, 120))  # 60 wide, 96 tall plus the stroke, in a corner
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1
    rows, cols = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert height == 20
    assert abs(width - 20 * (1 + 0.18) / (1.6 + 0.18)) <= 1
    mass = image.sum()
    centre = [(image.sum(axis=1) * np.arange(28)).sum() / mass, (image.sum(axis=0) * np.arange(28)).sum() / mass]
    assert np.all(np.abs(np.array(centre) - CENTRE) <= 0.5)


def test_a_thin_vertical_one_keeps_its_aspect_ratio():
    image = preprocess(draw_strokes(280, [(140, 40), (140, 240)], 20))
    cols = np.flatnonzero(image.any(axis=0))
    assert image.any(axis=1).sum() == 20 and len(cols) <= 4


def test_area_weights_average_areas():
    for n_in, n_out in [(280, 20), (97, 20), (13, 20), (20, 20)]:
        weights = area_weights(n_in, n_out)
        assert np.allclose(weights.sum(axis=1), 1)
        assert np.allclose(weights.sum(axis=0), n_out / n_in)  # every input pixel counts as much
    assert np.allclose(area_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])


def test_importing_common_preprocess_does_not_import_torch():
    code = "import sys, drawing.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_canvas_that_is_not_2d_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.zeros((280, 280, 4)))


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_mnist("test", mnist_dir, download=False)


def test_mnist_test_digits_stay_themselves(mnist_test):
    images = mnist_test[0][:1000]
    diff = np.array([np.abs(preprocess(image) - image).mean() for image in images])
    assert np.median(diff) < 1e-3 and diff.mean() < 3e-3


class NoProgress:
    def step(self, loss, correct, n):
        pass


def test_mnist_digits_drawn_small_in_a_corner_are_still_read_as_before(mnist_dir, mnist_test):
    x_train, y_train = load_mnist("train", mnist_dir, download=False)
    rng = np.random.default_rng(0)
    model = nn_numpy.mlp(rng)
    nn_numpy.train_epoch(model, nn_numpy.SoftmaxCrossEntropy(), nn_numpy.SGD(model, 0.1), x_train[:10000],
                         y_train[:10000], 32, rng.permutation(10000), NoProgress())
    images, labels = mnist_test[0][:500], mnist_test[1][:500]
    canvases = np.zeros((len(images), 280, 280), dtype=np.float32)
    canvases[:, 180:264, 12:96] = np.kron(images, np.ones((3, 3), dtype=np.float32))  # 3x, bottom-left corner
    prepared = np.stack([preprocess(c) for c in canvases])
    as_is = harness_numpy.predict(model, images).argmax(axis=1)
    again = harness_numpy.predict(model, prepared).argmax(axis=1)
    naive = harness_numpy.predict(model, canvases[:, 5::10, 5::10]).argmax(axis=1)  # shrunk, not preprocessed
    assert (as_is == labels).mean() > 0.85
    assert (again == as_is).mean() >= 0.97
    assert (naive == labels).mean() < 0.5
