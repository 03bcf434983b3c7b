"""The NumPy scripts' run harness: what happens around the training loop. Skip it on a first reading.

    python nn_numpy.py                 # nn_numpy.main -> harness_numpy.prepare, then harness_numpy.train_or_evaluate
    python cnn_numpy.py --eval-only    # harness_numpy.evaluate_checkpoint instead of training

nn_numpy.py and cnn_numpy.py hold the model and one epoch of training (train_epoch). This module does the rest:
the seeds and the data (prepare), the epochs with an evaluation after each (fit), --eval-only of a saved
checkpoint, the kit's .npz or the original report's pickle (evaluate_checkpoint), and through common/run.py
the progress bars, metrics.json, the figures and the checkpoint. The matrix products run on one BLAS thread
(one_blas_thread). No deep-learning framework is imported, here or through common/.
"""

import math
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from common import original_pickle
from common.checkpoint import load_npz, save_npz
from common.cli import DataOrder, resolve_data_flags, seed_everything
from common.data import load_model_inputs
from common.run import Run, dump_config


def one_blas_thread():
    """A context in which NumPy's matrix products run on one thread. Why: the layers' products are small, and on a
    shared 2-core machine a second BLAS thread waits for a busy core (benchmarks/README.md)."""
    return threadpool_limits(1, user_api="blas")


class Setup(NamedTuple):
    """What a NumPy script needs before it builds its model (see prepare)."""
    checkpoint: object      # (state, record, iteration losses) of an --eval-only .npz; None otherwise
    init_rng: object        # draws the weights
    order_rng: object       # draws the data order (common.cli.DataOrder)
    dtype: np.dtype         # of weights and activations (--dtype)
    data: tuple             # (x_train, y_train, x_test, y_test), images in dtype, shaped (N, *image_shape)
    test_images: object     # (10000, 28, 28): the test images as the figures show them (unpermuted)


def prepare(args, model_name, image_shape=(28, 28)):
    """Parse-time work shared by the NumPy scripts: the checkpoint for --eval-only, the data flags, the seeds,
    the data. (The original's pickle is read once the model exists: evaluate_checkpoint.)"""
    checkpoint = None
    if args.eval_only and not original_pickle.is_pickle(args.checkpoint):
        checkpoint = load_npz(args.checkpoint, model_name)
    resolve_data_flags(args, checkpoint and checkpoint[1])
    init_rng, order_rng = seed_everything(args.seed)
    dtype = np.dtype(args.dtype)
    x_train, y_train, x_test, y_test, test_images = load_model_inputs(args.data_dir, args.limit_train,
                                                                      args.permute_pixels)
    shaped = lambda images: images.astype(dtype, copy=False).reshape(len(images), *image_shape)  # noqa: E731
    return Setup(checkpoint, init_rng, order_rng, dtype, (shaped(x_train), y_train, shaped(x_test), y_test),
                 test_images)


def predict(model, images, batch_size=250):
    """Logits (N, 10) for ``images``, in batches: bounded memory, and faster than one huge batch here."""
    return np.concatenate([model.forward(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def fit(run, model, train_epoch, data, batch_size, order_rng, shuffle, logits):
    """Train for run.epochs(): ``train_epoch(order, progress)`` trains one epoch in ``order``; after each, the
    test set (and with --eval-train every / after the last epoch, the training set) is evaluated by
    ``logits(images)`` and recorded."""
    x_train, y_train, x_test, y_test = data
    steps = math.ceil(len(x_train) / batch_size)
    data_order = DataOrder(order_rng, len(x_train), shuffle)
    # Overflow warnings would only repeat what the divergence check reports in one line.
    with run, np.errstate(over="ignore", invalid="ignore", divide="ignore"), one_blas_thread():
        for epoch in run.epochs():
            with run.progress(epoch, steps) as progress:
                order, progress.order_digest = data_order()
                train_epoch(order, progress)
            train_logits = logits(x_train) if run.evaluates_train(epoch) else None
            run.end_epoch(model.state_dict(), train_logits, y_train, logits(x_test), y_test)


def evaluate_checkpoint(run, model, setup, logits):
    """--eval-only: put the checkpoint's weights in, take over its record, evaluate; returns the final numbers.

    setup.checkpoint: as load_npz returns it, or None for a checkpoint in the original report's format (a pickled
    dict of arrays, e.g. model.pkl): common/original_pickle.py reads that, admitting only NumPy arrays and mapping its
    names onto this model's layers; its per-epoch losses become the loss graph.
    """
    checkpoint = setup.checkpoint or original_pickle.load_checkpoint(run.checkpoint, model, run.config)
    state, record, iteration_losses = checkpoint
    model.load_state_dict(state, run.checkpoint)
    run.restore(record, iteration_losses)
    x_train, y_train, x_test, y_test = setup.data
    with one_blas_thread():
        return run.evaluate(logits(x_train), y_train, logits(x_test), y_test)


def train_or_evaluate(args, model_name, model, train_epoch, setup, code, logits=None, **record):
    """Say which code trains (``code``), then train ``model`` with ``train_epoch(order, progress)`` (or, with
    --eval-only, evaluate the loaded checkpoint instead) and write every output. ``logits(images)`` defaults to
    predict(model, images); ``record`` adds descriptive entries to the run's config (architecture, layers)."""
    print(f"{model_name}: {'evaluating with' if args.eval_only else 'training with'} {code}", flush=True)
    run = Run(model_name, "numpy", dump_config(args, **record), args, save_npz)
    logits = logits or (lambda images: predict(model, images))
    final = None
    if args.eval_only:
        final = evaluate_checkpoint(run, model, setup, logits)
    else:
        fit(run, model, train_epoch, setup.data, args.batch_size, setup.order_rng, args.shuffle, logits)
    run.finish(setup.test_images, final)
