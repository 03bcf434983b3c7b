"""The NumPy CNN's fast path: cnn_numpy.py's layers re-laid out for the CPU's caches, and each batch computed
as two halves in two processes.

    python cnn_numpy.py --layers fast            # the report's run, through this package (the default)
    python cnn_numpy.py --layers textbook        # the readable layers of cnn_numpy.py instead, one process
    python -m pytest tests/test_fast_layers.py tests/test_fast_halves.py    # proven equal to the textbook

layers.py: Conv2d, MaxPool2d (and PoolCorners) with cnn_numpy.py's interface and math, in other memory
layouts; cnn() builds the report's CNN from them. halves.py: Halves, the batch-splitting worker. This file:
what cnn_numpy.py --layers fast runs, its own training loop included (train_epoch). cnn_numpy.py imports this
package only when --layers fast runs. What each trick buys is measured in benchmarks/README.md.
"""

import functools

from common import harness_numpy
from fast_cnn.halves import PIECE, Halves, default_processes
from fast_cnn.layers import cnn
from nn_numpy import make_optimizer

# Pooling comes before ReLU here: the two commute exactly (layers.cnn), so this is the report's network.
ARCHITECTURE = "conv3x3(1->16,pad1)-maxpool2-ReLU-conv3x3(16->32,pad1)-maxpool2-ReLU-linear(1568->10)"


def train_epoch(halves, optimizer, batch_size, order, progress):
    """nn_numpy.train_epoch with each batch's forward and backward computed as two halves (Halves.step)."""
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        loss, correct = halves.step(batch)
        optimizer.step()
        progress.step(loss, correct, len(batch))


def train_cnn(args, setup):
    """cnn_numpy.py --layers fast: the report's CNN built from layers.py (the same weights as cnn_numpy.cnn from
    the same init_rng), trained (or evaluated) by common/harness_numpy.py with each batch's gradients and the logits computed
    as two halves (Halves), then every output written. setup: harness_numpy.prepare's, images (N, 1, 28, 28)."""
    model = cnn(setup.init_rng, setup.dtype, args.init)
    x_train, y_train, x_test, _ = setup.data
    with Halves(model, x_train, y_train, (x_train, x_test), args.processes or default_processes()) as halves:
        epoch = functools.partial(train_epoch, halves, make_optimizer(model, args), args.batch_size)
        code = (f"the fast layers of fast_cnn/, {'two processes' if halves.processes == 2 else 'one process'} "
                f"(--layers textbook: the layers of cnn_numpy.py)")
        harness_numpy.train_or_evaluate(args, "cnn_numpy", model, epoch, setup, code, logits=halves.predict,
                                  architecture=ARCHITECTURE, layers="fast",
                                  split_batches=f"two halves, pieces of at most {PIECE} images (fast_cnn/halves.py)")
