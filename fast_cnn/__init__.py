"""The NumPy CNN's fast path: cnn_numpy.py's layers re-laid out for the CPU's caches, and each batch computed
as two halves in two processes.

    python cnn_numpy.py                          # the report's run, through this package (--layers fast)
    python cnn_numpy.py --layers textbook        # the readable layers of cnn_numpy.py instead, one process
    python -m pytest tests/test_fast_layers.py tests/test_fast_halves.py    # proven equal to the textbook

layers.py: Conv2d, MaxPool2d (and PoolCorners) with cnn_numpy.py's interface and math, in other memory
layouts; cnn() builds the report's CNN from them. halves.py: Halves, the batch-splitting worker. This file:
what cnn_numpy.py --layers fast runs. What each trick buys is measured in benchmarks/README.md.
"""

from fast_cnn.halves import PIECE, Halves, available_cores, can_fork, default_processes
from fast_cnn.layers import cnn
from nn_numpy import SoftmaxCrossEntropy, make_optimizer, train_or_evaluate

# Pooling comes before ReLU here: the two commute exactly (layers.cnn), so this is the report's network.
ARCHITECTURE = "conv3x3(1->16,pad1)-maxpool2-ReLU-conv3x3(16->32,pad1)-maxpool2-ReLU-linear(1568->10)"
RECORD = {"architecture": ARCHITECTURE, "layers": "fast",
          "split_batches": f"two halves, pieces of at most {PIECE} images (fast_cnn/halves.py)"}


def add_processes_flag(parser):
    parser.add_argument("--processes", type=int, choices=[1, 2], default=None,
                        help="--layers fast: processes computing each batch's two halves; 2 runs the second half "
                             "in a forked worker (Linux), and the numbers are the same either way (default: "
                             f"{default_processes()} on this machine, which has {available_cores()} core(s)"
                             f"{'' if can_fork() else ' and cannot fork'})")


def train_cnn(run, args, init_rng, order_rng, dtype, data, test_images, checkpoint=None):
    """cnn_numpy.py --layers fast: the report's CNN built from layers.py (the same weights as cnn_numpy.cnn from
    the same init_rng), trained or evaluated through nn_numpy's loop with each batch's gradients and the logits
    computed as two halves (Halves), then every output written. data: (x_train, y_train, x_test, y_test)."""
    model = cnn(init_rng, dtype, args.init)
    with Halves(model, data[0], data[1], (data[0], data[2]), args.processes or default_processes()) as halves:
        train_or_evaluate(run, model, SoftmaxCrossEntropy(), make_optimizer(model, args), data, args, order_rng,
                          test_images, checkpoint, halves=halves)
