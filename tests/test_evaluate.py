"""Evaluation metrics on constructed features: k-NN and the linear probe find separable classes, not shuffled ones."""

import numpy as np
import torch

from distill.evaluate import knn_accuracy, probe_accuracy

from .helpers import clustered


def _split(x, y):
    x, y = torch.from_numpy(x), torch.from_numpy(y).long()
    return x[::2], y[::2], x[1::2], y[1::2]


def test_knn_and_probe_are_perfect_on_separable_classes_and_near_chance_on_shuffled_labels():
    x, y = clustered(2000, 64, centers=10, spread=0.05, seed=0)
    tr, tr_y, te, te_y = _split(x, y)
    assert knn_accuracy(tr, tr_y, te, te_y, classes=10) == 1.0
    assert probe_accuracy(tr, tr_y, te, te_y, classes=10) == 1.0
    shuffled = torch.from_numpy(np.random.default_rng(1).permutation(tr_y.numpy()))
    assert abs(knn_accuracy(tr, shuffled, te, te_y, classes=10) - 0.1) < 0.05
    assert abs(probe_accuracy(tr, shuffled, te, te_y, classes=10) - 0.1) < 0.05


def test_knn_votes_are_weighted_by_similarity():
    # Two far neighbours of class 1 against one exact match of class 0: the temperature makes the match win.
    train = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]])
    labels = torch.tensor([0, 1, 1])
    query = torch.tensor([[1.0, 0.0]])
    assert knn_accuracy(train, labels, query, torch.tensor([0]), classes=2, k=3, temperature=0.07) == 1.0
    assert knn_accuracy(train, labels, query, torch.tensor([1]), classes=2, k=3, temperature=100.0) == 1.0
