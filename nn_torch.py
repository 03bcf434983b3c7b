"""The report's MLP in PyTorch: 784 -> 128 -> ReLU -> 64 -> ReLU -> 10, cross-entropy, SGD with momentum.

    python nn_torch.py                           # the report's run: 20 epochs, lr 0.01, momentum 0.9, batch 32
    python nn_torch.py --device cuda             # auto picks cuda, then mps, then cpu
    python nn_torch.py --epochs 3 --limit-train 2000 --batch-size 8    # a quick run that learns (~85-88%)
    python nn_torch.py --momentum 0 --lr 0.1     # nn_numpy.py's recipe (plain SGD), in PyTorch
    python nn_torch.py --eval-only               # redraw figures/nn_torch/ from checkpoints/nn_torch.pt
                                                 # (or the committed reference/nn_torch.pt)

The whole dataset lives on the device as one tensor; an epoch takes its batches as slices of a random
permutation drawn with NumPy from --seed's data-order stream: one permutation kept for every epoch by default
(--shuffle once, as the original's loader), or a new one each epoch (--shuffle epoch, what a DataLoader with
shuffle=True does). Every script given the same seed, --shuffle, batch size and training set sees exactly the
same batches (common.cli.seed_everything). No DataLoader.
common/harness_torch.py runs the epochs, evaluation, checkpoints and --eval-only around train_epoch, as
common/harness_numpy.py does for the NumPy scripts; cnn_torch.py takes its training step from here.
"""

import functools
import sys

import torch
from torch import nn

from common import harness_torch
from common.cli import make_parser, parse_args, run_main


def mlp():
    """The report's MLP with PyTorch's default initialisation. Indices match nn_numpy.mlp()'s layers."""
    return nn.Sequential(nn.Flatten(),
                         nn.Linear(784, 128), nn.ReLU(),
                         nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def train_epoch(model, loss_fn, optimizer, images, labels, batch_size, order, progress):
    """One pass over the training set in ``order`` (a NumPy permutation of its indices), one optimizer step per
    batch: forward, loss, backward (autograd), step. ``progress`` only records each batch's loss and accuracy."""
    model.train()
    order = torch.from_numpy(order).to(images.device)
    images, labels = images[order], labels[order]  # one gather per epoch; batches are then plain views
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        progress.step(loss.item(), (logits.argmax(dim=1) == y).sum().item(), len(y))


def build_parser():
    p = make_parser("nn_torch", "Train the report's MLP on MNIST with PyTorch.",
                    epochs=20, lr=0.01, batch_size=32, checkpoint_suffix=".pt", optimizer="sgd", init="pytorch")
    harness_torch.add_device_flag(p)
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    setup = harness_torch.prepare(args, "nn_torch", (28, 28))  # device, seeds, MNIST as device tensors
    model = harness_torch.initialise(mlp(), args.init).to(setup.device)
    x_train, y_train = setup.data[:2]
    epoch = functools.partial(train_epoch, model, nn.CrossEntropyLoss(), harness_torch.make_optimizer(model, args),
                              x_train, y_train, args.batch_size)  # epoch(order, progress): harness_torch.fit calls it
    harness_torch.train_or_evaluate(args, "nn_torch", model, epoch, setup, architecture="784-128-ReLU-64-ReLU-10")


if __name__ == "__main__":
    sys.exit(run_main(main, "nn_torch.py"))
