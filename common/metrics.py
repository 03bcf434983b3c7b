"""Metrics from logits: loss, accuracy, confusion matrix, top-3 per class, most confident mistakes.

All computed in float64 from the model's logits, whatever dtype the model ran in, so that probabilities
within 1e-7 of 1 can still be told apart (the report's grid shows "1.000" thirty times).
"""

import math

import numpy as np

NUM_CLASSES = 10


def log_softmax(logits):
    """(N, C) logits -> (N, C) float64 log-probabilities, stable via log-sum-exp."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits):
    return np.exp(log_softmax(logits))


def cross_entropy(logits, labels):
    """Mean cross-entropy in nats."""
    return float(-log_softmax(logits)[np.arange(len(labels)), labels].mean())


def accuracy(logits, labels):
    """Fraction of rows whose arg-max is the label."""
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


def confusion_counts(labels, predictions):
    """10x10 counts, rows = actual class, columns = predicted class (as sklearn's confusion_matrix, which the
    tests check it against; importing scikit-learn here cost each run ~1 s)."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    return np.bincount(labels * NUM_CLASSES + predictions, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES,
                                                                                              NUM_CLASSES)


def complement_and_margin(logits, classes):
    """For each row i: 1 - P(classes[i]) computed without cancellation, and the logit margin of that class.

    The complement is the sum of the other classes' probabilities, so it stays exact (e.g. 3.7e-12) where
    1 - p would round to 0. The margin (logit of the class minus the largest other logit) breaks the ties
    left when even the complement underflows.
    """
    logp = log_softmax(logits)
    rows = np.arange(len(logp))
    others = np.exp(logp)
    others[rows, classes] = 0.0
    complement = others.sum(axis=1)
    z = np.asarray(logits, dtype=np.float64).copy()
    chosen = z[rows, classes].copy()
    z[rows, classes] = -np.inf
    return complement, chosen - z.max(axis=1)


def rank_most_confident(complement, margin):
    """Indices ordered most confident first: smallest complement, then largest margin, then lowest index."""
    return np.lexsort((np.arange(len(complement)), -margin, complement))


def top_k_per_class(logits, labels, k=3):
    """(10, k) test indices: for each digit, the k images of that digit most confidently given that digit.

    Returns -1 where a class has fewer than k images.
    """
    complement, margin = complement_and_margin(logits, labels)
    out = np.full((NUM_CLASSES, k), -1, dtype=np.int64)
    for digit in range(NUM_CLASSES):
        members = np.flatnonzero(labels == digit)
        best = members[rank_most_confident(complement[members], margin[members])[:k]]
        out[digit, :len(best)] = best
    return out


def most_confident_mistakes(logits, labels, n=20):
    """Indices of the ``n`` wrong predictions made with the highest probability, most confident first."""
    predictions = np.asarray(logits).argmax(axis=1)
    wrong = np.flatnonzero(predictions != labels)
    complement, margin = complement_and_margin(logits[wrong], predictions[wrong])
    return wrong[rank_most_confident(complement, margin)[:n]]


def format_probability(complement):
    """A probability given by its complement, with enough digits to tell near-certain ones apart.

    The complement's first three significant digits are kept: 0.0123 -> '98.77%', 3.71e-6 -> '99.999629%',
    and below 1e-11 the complement itself is shown: 3.7e-14 -> '100% − 3.7e-12%'.
    """
    percent_left = 100.0 * complement
    if percent_left >= 1.0:
        return f"{100.0 - percent_left:.2f}%"
    if percent_left >= 1e-9:
        decimals = math.ceil(-math.log10(percent_left)) + 2
        return f"{100.0 - percent_left:.{decimals}f}%"
    return f"100% − {percent_left:.1e}%"
