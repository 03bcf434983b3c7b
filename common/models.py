"""The kit's four models, listed once: their names, titles, frameworks and checkpoint suffixes.

    from common.models import MODELS, TITLES, checkpoint_name
    for model in MODELS:                     # "nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch"
        print(TITLES[model], checkpoint_name(model))      # "MLP, NumPy nn_numpy.npz", ...

A model's name is its script's (nn_numpy.py, ...): <architecture>_<framework>, the architecture "nn" (the MLP)
or "cnn", the framework "numpy" or "torch".
"""

MODELS = ("nn_numpy", "nn_torch", "cnn_numpy", "cnn_torch")
TITLES = {"nn_numpy": "MLP, NumPy", "nn_torch": "MLP, PyTorch", "cnn_numpy": "CNN, NumPy",
          "cnn_torch": "CNN, PyTorch"}
SUFFIX = {"numpy": ".npz", "torch": ".pt"}  # the checkpoint each framework's scripts write


def architecture(model):
    """"nn" or "cnn"."""
    return model.split("_")[0]


def framework(model):
    """"numpy" or "torch"."""
    return model.split("_")[1]


def checkpoint_name(model):
    """"nn_numpy.npz", "cnn_torch.pt": the file name of the model's checkpoint."""
    return model + SUFFIX[framework(model)]
