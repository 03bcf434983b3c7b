"""A drawing -> a 28x28 image prepared the way MNIST's digits were, for the models to read.

    from drawing.preprocess import preprocess
    image = preprocess(canvas)     # canvas: (H, W) grey levels in [0, 1], ink bright on black
    if image is None: ...          # (almost) nothing drawn: ask for a digit, predict nothing

MNIST's digits were scaled so that their bounding box fits a 20x20 box with the aspect ratio kept,
anti-aliased to grey levels, then centred in the 28x28 frame by their centre of mass. A digit drawn small,
off-centre or on a larger canvas is therefore moved and scaled the same way before a model sees it.
Pure NumPy: draw.py's server calls this, and the NumPy side of the kit never imports a framework.
"""

import numpy as np

SIZE = 28             # the frame
BOX = 20              # the longest side of the digit's bounding box inside the frame
INK = 0.1             # grey level above which a pixel counts as drawn (ignores anti-aliasing fringes)
MIN_EXTENT = 0.1      # a drawing whose bounding box spans less than this fraction of the canvas is a dot
CENTRE = 14.0         # MNIST's centre of mass, in pixel indices: 13.99 (rows) and 14.01 (columns) on its test set


def preprocess(canvas):
    """(H, W) grey levels in [0, 1], ink = 1 -> (28, 28) float32 in [0, 1], or None when nothing is drawn.

    None means empty or near-empty: no pixel above INK, or a bounding box smaller than MIN_EXTENT of the
    canvas's longer side (a click, a speck), which no model should be asked to read as a digit.
    """
    canvas = np.asarray(canvas, dtype=np.float64)
    if canvas.ndim != 2:
        raise ValueError(f"expected a 2-D grey-level image, got shape {canvas.shape}")
    rows, cols = np.flatnonzero((canvas > INK).any(axis=1)), np.flatnonzero((canvas > INK).any(axis=0))
    if len(rows) == 0:
        return None
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    if max(height, width) < MIN_EXTENT * max(canvas.shape):
        return None
    crop = np.clip(canvas[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], 0, 1)
    scale = BOX / max(height, width)
    out_h, out_w = max(1, round(height * scale)), max(1, round(width * scale))
    digit = area_weights(height, out_h) @ crop @ area_weights(width, out_w).T  # (out_h, out_w)
    return centre_by_mass(digit).astype(np.float32)


def area_weights(n_in, n_out):
    """(n_out, n_in) resampling matrix: each output pixel is the mean of the input area it covers.

    Averaging areas is what anti-aliases a downscaled stroke into MNIST-like grey edges; rows sum to 1.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)  # output pixel boundaries, in input pixels
    left = np.maximum(edges[:-1, None], np.arange(n_in)[None, :])
    right = np.minimum(edges[1:, None], np.arange(1, n_in + 1)[None, :])
    return np.clip(right - left, 0, None) * (n_out / n_in)


def centre_by_mass(digit):
    """Place ``digit`` (h, w <= 20) in a 28x28 frame with its centre of mass at CENTRE, shifted by whole pixels
    (as MNIST's were) and never past the frame's edge."""
    h, w = digit.shape
    mass = digit.sum()
    cy = (digit.sum(axis=1) * np.arange(h)).sum() / mass
    cx = (digit.sum(axis=0) * np.arange(w)).sum() / mass
    top = int(np.clip(round(CENTRE - cy), 0, SIZE - h))
    left = int(np.clip(round(CENTRE - cx), 0, SIZE - w))
    frame = np.zeros((SIZE, SIZE))
    frame[top:top + h, left:left + w] = np.clip(digit, 0, 1)
    return frame
