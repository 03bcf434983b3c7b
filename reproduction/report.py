"""The original report's own numbers: the "Final Results" of its four training logs (training_metrics.txt in its
repository; tests/test_reproduce.py checks them against the files where ../shared/original has them).

Accuracies in %, losses in nats. Its train loss is the last epoch's running average over the batches (its log's
last per-epoch train loss); ours is measured on the whole training set after the last epoch.
"""

REPORT = {"nn_numpy": {"train_acc": 99.99, "test_acc": 97.94, "train_loss": 0.0011, "test_loss": 0.0899},
          "nn_torch": {"train_acc": 99.97, "test_acc": 97.97, "train_loss": 0.0013, "test_loss": 0.1024},
          "cnn_numpy": {"train_acc": 98.17, "test_acc": 98.17, "train_loss": 0.0632, "test_loss": 0.0565},
          "cnn_torch": {"train_acc": 99.52, "test_acc": 98.77, "train_loss": 0.0127, "test_loss": 0.0463}}


def test_acc_difference(a, b):
    """The report's test accuracy of model ``a`` minus that of ``b``, in percentage points."""
    return round(REPORT[a]["test_acc"] - REPORT[b]["test_acc"], 2)


def overfitting_gap(model):
    """The report's train - test accuracy of ``model``, in percentage points."""
    return round(REPORT[model]["train_acc"] - REPORT[model]["test_acc"], 2)
