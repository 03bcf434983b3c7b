"""Identified weights evaluated with this kit's own models, as `--eval-only` evaluates a checkpoint.

    network = numpy_network(found.architecture, layout.params, found.dtype)   # nn_numpy.mlp / cnn_numpy.cnn
    network = torch_network(found.architecture, layout.params, found.dtype)   # nn_torch.mlp / cnn_torch.cnn
    logits = network(images)                  # images (N, 28, 28) float32 in [0, 1] -> (N, 10) logits
    layout, note = choose_layout(found, network_for, train_images, train_labels)

Arrays from NumPy files run in the NumPy models, PyTorch state_dicts in the PyTorch ones, each in the
weights' precision (float64 weights in float64, as --eval-only does with a float64 checkpoint; anything else
in float32). Test loss and accuracy are common.metrics' cross_entropy and accuracy of the logits, as in
common/run.py. A layout left open by the shapes is chosen on training images only, never the test set.
"""

import numpy as np

from common import harness_numpy, metrics

BATCH = 250  # images per forward pass: bounded memory, and as fast as one huge batch here


def numpy_network(architecture, params, dtype):
    """A function images (N, 28, 28) -> logits (N, 10): nn_numpy.mlp() or cnn_numpy.cnn() holding ``params``."""
    import cnn_numpy
    import nn_numpy

    rng = np.random.default_rng(0)
    model = nn_numpy.mlp(rng, dtype) if architecture == "mlp" else cnn_numpy.cnn(rng, dtype)
    model.load_state_dict(dict(zip(model.state_dict(), params)), "the submitted file")
    shape = (1, 28, 28) if architecture == "cnn" else (28, 28)

    def logits(images):
        return harness_numpy.predict(model, images.astype(dtype, copy=False).reshape(len(images), *shape), BATCH)

    return logits


def torch_network(architecture, params, dtype):
    """As :func:`numpy_network`, with nn_torch.mlp() or cnn_torch.cnn(); Linear weights go in as (out, in)."""
    import torch

    import cnn_torch
    import nn_torch
    from common import harness_torch

    model = nn_torch.mlp() if architecture == "mlp" else cnn_torch.cnn()
    model = model.double() if dtype == np.float64 else model.float()
    own = model.state_dict()
    state = {key: torch.from_numpy(np.ascontiguousarray(value.T if value.ndim == 2 else value, dtype=dtype))
             for key, value in zip(own, params)}
    model.load_state_dict(state)
    shape = (1, 28, 28) if architecture == "cnn" else (28, 28)

    def logits(images):
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=dtype).reshape(len(images), *shape))
        return harness_torch.predict(model, x, BATCH)

    return logits


def scores(logits, labels):
    """(accuracy as a fraction, mean cross-entropy in nats), as common/run.py records them."""
    return metrics.accuracy(logits, labels), metrics.cross_entropy(logits, labels)


def choose_layout(found, network_for, train_images, train_labels):
    """(the :class:`Layout` with the best accuracy on the training images, a note, whether it was guessed).

    network_for: Layout -> logits function (numpy_network or torch_network over its params).

    With one layout there is nothing to choose. A layout other than the kit's own (the first), or one that wins
    by less than 5 points, counts as guessed: the gradebook flags the row.
    """
    if len(found.layouts) == 1:
        return found.layouts[0], None, False
    accuracies = [scores(network_for(layout)(train_images), train_labels)[0] for layout in found.layouts]
    order = sorted(range(len(accuracies)), key=lambda i: (-accuracies[i], i))
    best, runner_up = order[0], order[1]
    margin = accuracies[best] - accuracies[runner_up]
    note = (f"layout chosen on {len(train_labels)} training images: {found.layouts[best].label} "
            f"({accuracies[best]:.1%}; next {found.layouts[runner_up].label}, {accuracies[runner_up]:.1%})")
    return found.layouts[best], note, best != 0 or margin < 0.05
