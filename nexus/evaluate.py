"""Scores of an adapter on encoded pairs: cosine similarity, then Spearman/Pearson against gold.

`EncodedPairs` is what the adapter trains on when the backbone is frozen; `nexus.live.LivePairs`
offers the same two methods when the backbone trains too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn


@dataclass(frozen=True)
class EncodedPairs:
    """One split after the backbone: embeddings of both sides and gold scores (0..1), as tensors."""

    emb1: torch.Tensor
    emb2: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return len(self.scores)

    def embed_batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.emb1[rows], self.emb2[rows]

    def encoded(self) -> "EncodedPairs":
        return self


def cosine_predictions(net: nn.Module | None, pairs) -> np.ndarray:
    """Cosine similarity per pair; `net=None` scores the backbone's own embeddings (zero-shot)."""
    pairs = pairs.encoded()
    with torch.no_grad():
        a, b = (pairs.emb1, pairs.emb2) if net is None else (net(pairs.emb1), net(pairs.emb2))
        return torch.cosine_similarity(a, b).cpu().numpy()


def correlations(predictions: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    """(Spearman, Pearson)."""
    return float(stats.spearmanr(predictions, gold).statistic), float(stats.pearsonr(predictions, gold).statistic)
