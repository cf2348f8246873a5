"""Scores of an adapter on encoded pairs: cosine similarity, then Spearman/Pearson against gold."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats
from torch import nn


def cosine_predictions(net: nn.Module | None, pairs) -> np.ndarray:
    """Cosine similarity per pair of `pairs` (a `nexus.inputs.TrainingPairs`); `net=None` scores
    the backbone's own embeddings (zero-shot)."""
    pairs = pairs.encoded()
    with torch.no_grad():
        a, b = (pairs.emb1, pairs.emb2) if net is None else (net(pairs.emb1), net(pairs.emb2))
        return torch.cosine_similarity(a, b).cpu().numpy()


def correlations(predictions: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson)."""
    return float(stats.spearmanr(predictions, gold).statistic), float(stats.pearsonr(predictions, gold).statistic)
