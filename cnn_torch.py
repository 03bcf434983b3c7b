"""The report's CNN in PyTorch: conv(1->16) ReLU pool -> conv(16->32) ReLU pool -> linear(1568->10), Adam.

    python cnn_torch.py                          # the report's run: 10 epochs, Adam lr 0.001, batch 32
    python cnn_torch.py --device cuda            # auto picks cuda, then mps, then cpu
    python cnn_torch.py --eval-only              # redraw figures/cnn_torch/ from checkpoints/cnn_torch.pt

Device handling, the training loop, evaluation and checkpoints come from nn_torch.py, as cnn_numpy.py
takes its layers and loop from nn_numpy.py.
"""

import sys

import torch
from torch import nn

from common.cli import make_parser, run_main, seed_everything
from common.data import load_splits
from common.run import Run, dump_config
from nn_torch import add_device_flag, save_checkpoint, select_device, to_device, train_or_evaluate


def cnn():
    """The report's CNN with PyTorch's default initialisation. Indices match cnn_numpy.cnn()'s layers.

    Pooling before ReLU, as in cnn_numpy.cnn(): the two commute exactly, and ReLU then sees 4x fewer elements.
    """
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
                         nn.Flatten(),
                         nn.Linear(32 * 7 * 7, 10))


def build_parser():
    p = make_parser("cnn_torch", "Train the report's CNN on MNIST with PyTorch.",
                    epochs=10, lr=0.001, batch_size=32, checkpoint_suffix=".pt")
    add_device_flag(p)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = select_device(args.device)
    rng = seed_everything(args.seed)
    x_train, y_train, x_test, y_test = load_splits(args.data_dir, args.limit_train)
    nchw = (x_train.reshape(-1, 1, 28, 28), y_train, x_test.reshape(-1, 1, 28, 28), y_test)
    data = to_device(nchw, device)
    # channels_last lets the CPU convolution kernels skip layout conversions: about 1.3x faster here.
    model = cnn().to(device, memory_format=torch.channels_last)
    config = dump_config(args, device=str(device), dtype="float32", optimizer="Adam",
                         init="PyTorch default", memory_format="channels_last",
                         architecture="conv3x3(1->16,pad1)-ReLU-maxpool2-conv3x3(16->32,pad1)-ReLU-maxpool2-"
                                      "linear(1568->10)")
    run = Run("cnn_torch", "torch", config, args, save_checkpoint)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    train_or_evaluate(run, model, optimizer, data, (y_train, y_test), args, rng)


if __name__ == "__main__":
    sys.exit(run_main(main, "cnn_torch.py"))
