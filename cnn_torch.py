"""The report's CNN in PyTorch: conv(1->16) pool ReLU -> conv(16->32) pool ReLU -> linear(1568->10), Adam.

    python cnn_torch.py                          # the report's run: 10 epochs, Adam lr 0.001, batch 32
    python cnn_torch.py --device cuda            # auto picks cuda, then mps, then cpu
    python cnn_torch.py --epochs 1 --limit-train 2000 --batch-size 8    # a quick run that learns (~90%)
    python cnn_torch.py --optimizer sgd --lr 0.01 --epochs 5 --batch-size 16 --init xavier  # cnn_numpy's recipe
    python cnn_torch.py --eval-only              # redraw figures/cnn_torch/ from checkpoints/cnn_torch.pt
                                                 # (or the committed reference/cnn_torch.pt)

The report's network pools after ReLU; this one pools first: max-pooling and ReLU commute exactly
(max(relu(x)) = relu(max(x)), and both send a window's gradient to the same element), so it is the same
network, and ReLU sees 4x fewer elements. The training step comes from nn_torch.py, as cnn_numpy.py takes its
layers and loop from nn_numpy.py; the device, the epochs, evaluation and checkpoints from common/harness_torch.py.
"""

import functools
import sys

import torch
from torch import nn

from common import harness_torch
from common.cli import make_parser, parse_args, run_main
from nn_torch import train_epoch


def cnn():
    """The report's CNN with PyTorch's default initialisation; its parameters have cnn_numpy.cnn()'s indices
    (0, 3, 7). Pooling before ReLU, unlike cnn_numpy.cnn() (as fast_cnn's layers): the two commute exactly."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 10))


def build_parser():
    p = make_parser("cnn_torch", "Train the report's CNN on MNIST with PyTorch.",
                    epochs=10, lr=0.001, batch_size=32, checkpoint_suffix=".pt", optimizer="adam", init="pytorch")
    harness_torch.add_device_flag(p)
    return p


def main(argv=None):
    args = parse_args(build_parser(), argv)
    setup = harness_torch.prepare(args, "cnn_torch", (1, 28, 28))  # device, seeds, MNIST as device tensors
    # channels_last lets the CPU convolution kernels skip layout conversions: about 1.3x faster here.
    model = harness_torch.initialise(cnn(), args.init).to(setup.device, memory_format=torch.channels_last)
    x_train, y_train = setup.data[:2]
    epoch = functools.partial(train_epoch, model, nn.CrossEntropyLoss(), harness_torch.make_optimizer(model, args),
                              x_train, y_train, args.batch_size)  # epoch(order, progress): harness_torch.fit calls it
    harness_torch.train_or_evaluate(args, "cnn_torch", model, epoch, setup, memory_format="channels_last",
                                    architecture="conv3x3(1->16,pad1)-maxpool2-ReLU-conv3x3(16->32,pad1)-maxpool2-"
                                                 "ReLU-linear(1568->10)")

if __name__ == "__main__":
    sys.exit(run_main(main, "cnn_torch.py"))
