"""The report's figures, drawn the same way for all four models (headless, deterministic PNGs).

    loss.png              train and test loss per epoch, per-iteration training loss behind them
    confusion_matrix.png  P(predicted | actual), rows sum to 1, every cell annotated
    top3.png              per digit, the three test images most confidently given that digit
    mistakes.png          the most confident wrong predictions
"""

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from common.io import atomic_path  # noqa: E402
from common.metrics import (NUM_CLASSES, complement_and_margin, format_probability,  # noqa: E402
                            most_confident_mistakes, top_k_per_class)

STYLE = {"font.size": 10, "axes.titlesize": 11, "figure.dpi": 100, "savefig.dpi": 100}


def save(fig, path):
    with atomic_path(path) as tmp:
        # No Software/date metadata: the same inputs give the same bytes.
        fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)


def smooth(values, window):
    """Moving average over ``window`` points, shortened at the start so it covers every point."""
    values = np.asarray(values, dtype=np.float64)
    window = max(1, min(window, len(values)))
    cumsum = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumsum[ends] - cumsum[starts]) / (ends - starts)


def plot_loss(path, title, history, iteration_losses):
    """history: list of dicts with epoch, train_loss, test_loss; iteration_losses: one per training step.

    A history without train_loss (the original report's, which logged only the mean over each epoch's batches)
    draws its train_loss_running instead, labelled as such.
    """
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        if len(iteration_losses) and history:
            steps_per_epoch = len(iteration_losses) / len(history)
            x = np.arange(1, len(iteration_losses) + 1) / steps_per_epoch
            window = max(1, int(steps_per_epoch // 20))
            ax.plot(x, smooth(iteration_losses, window), color="tab:blue", alpha=0.25, linewidth=0.8,
                    label=f"train, per iteration (moving average of {window})")
        epochs = [h["epoch"] for h in history]
        key, label = (("train_loss", "train (whole set)") if all("train_loss" in h for h in history)
                      else ("train_loss_running", "train (mean over the epoch's batches)"))
        ax.plot(epochs, [h[key] for h in history], "o-", color="tab:blue", label=label)
        ax.plot(epochs, [h["test_loss"] for h in history], "s-", color="tab:orange", label="test")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("cross-entropy loss (log scale)")
        ax.set_xlim(0, max(epochs, default=1) + 0.2)
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        save(fig, path)


def plot_confusion_matrix(path, title, counts):
    """Row-normalised counts as a heat map with each cell's value written in it."""
    counts = np.asarray(counts, dtype=np.float64)
    probabilities = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    cmap = plt.get_cmap("Blues")
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(8.5, 7.5))
        image = ax.imshow(probabilities, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        fig.colorbar(image, ax=ax)
        for (i, j), value in np.ndenumerate(probabilities):  # dark text on light cells, white on dark ones
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                    color=cmap(1.0) if value < 0.5 else cmap(0.0))
        ticks = np.arange(NUM_CLASSES)
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("Actual")
        ax.set_title(f"{title}\nP(predicted | actual), each row sums to 1")
        save(fig, path)


def show_digit(ax, image, title):
    ax.imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_top3(path, title, logits, labels, images):
    """10 rows (digits) x 3 columns: the test images most confidently classified as their own digit."""
    top = top_k_per_class(logits, labels, k=3)
    complement, _ = complement_and_margin(logits, labels)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(NUM_CLASSES, 3, figsize=(4.6, 15))
        for digit in range(NUM_CLASSES):
            for rank in range(3):
                ax, index = axes[digit, rank], top[digit, rank]
                if index < 0:
                    ax.axis("off")
                    continue
                show_digit(ax, images[index], f"p = {format_probability(complement[index])}")
                if rank == 0:
                    ax.set_ylabel(f"digit {digit}", fontsize=10)
        fig.suptitle(f"{title}\nmost confident test images per digit", fontsize=11)
        fig.tight_layout()
        save(fig, path)


def plot_mistakes(path, title, logits, labels, images, n=20, columns=5):
    """The ``n`` wrong test predictions made with the highest probability, titled "true → predicted (p)"."""
    wrong = most_confident_mistakes(logits, labels, n)
    predictions = np.asarray(logits).argmax(axis=1)
    complement, _ = complement_and_margin(logits[wrong], predictions[wrong])
    rows = max(1, -(-len(wrong) // columns))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(rows, columns, figsize=(1.8 * columns, 2.0 * rows + 0.6), squeeze=False)
        for k, ax in enumerate(axes.flat):
            if k >= len(wrong):
                ax.axis("off")
                continue
            i = wrong[k]
            show_digit(ax, images[i], f"{labels[i]} → {predictions[i]} ({format_probability(complement[k])})")
        fig.suptitle(f"{title}\nmost confident mistakes (true → predicted, probability); "
                     f"{int((predictions != labels).sum())} wrong in all", fontsize=11)
        fig.tight_layout()
        save(fig, path)
