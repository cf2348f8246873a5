"""What the epoch loop trains and evaluates on: cached embeddings, or sentences through a trainable backbone.

- `EncodedPairs` (frozen backbone, the default): every sentence encoded once, before training,
  and cached on disk across runs (`encode_splits`).
- `BackbonePairs` (full fine-tuning, `model.freeze_backbone=false`): sentences go through the
  backbone at every batch, so it trains too. No embedding cache: the backbone changes every step.

Both offer what the loop uses (`TrainingPairs`), so the same loop trains a frozen or an unfrozen
backbone. `make_inputs` builds the one the config asks for, per split.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from nexus.backbone import fingerprint, pick_device
from nexus.cache import EmbeddingCache
from nexus.data import Pairs


class TrainingPairs(Protocol):
    """One split as the epoch loop sees it: gold scores (0..1) and embeddings of both sides."""

    scores: torch.Tensor

    def __len__(self) -> int: ...

    def embed_batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings of both sides of `rows`, for a training step."""

    def encoded(self) -> EncodedPairs:
        """All embeddings as they are now, for dev/test scoring."""


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


class BackbonePairs:
    """One split as sentences, embedded by the (training) backbone whenever they are needed."""

    def __init__(self, backbone, pairs: Pairs, device: str, bf16: bool, encode_batch_size: int):
        self.backbone = backbone
        self.sentences1, self.sentences2 = pairs.sentences1, pairs.sentences2
        self.scores = torch.from_numpy(pairs.scores).to(device)
        self.device = device
        self.bf16 = bf16
        self.encode_batch_size = encode_batch_size

    def __len__(self) -> int:
        return len(self.scores)

    def _embed(self, sentences: list[str]) -> torch.Tensor:
        features = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                    for k, v in self.backbone.preprocess(sentences).items()}
        with torch.autocast(device_type=torch.device(self.device).type, dtype=torch.bfloat16, enabled=self.bf16):
            embeddings = self.backbone(features)["sentence_embedding"]
        return embeddings.float()  # the adapter and the loss stay in float32

    def embed_batch(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.backbone.train()
        rows = rows.tolist()
        # Both sides in one forward pass: one tokenizer call, one kernel launch sequence.
        both = self._embed([self.sentences1[i] for i in rows] + [self.sentences2[i] for i in rows])
        return both[:len(rows)], both[len(rows):]

    def encoded(self) -> EncodedPairs:
        """Embeddings by the backbone as it is now (for dev/test scoring)."""
        self.backbone.eval()
        with torch.no_grad():
            sides = [torch.cat([self._embed(sentences[i:i + self.encode_batch_size])
                                for i in range(0, len(sentences), self.encode_batch_size)])
                     for sentences in (self.sentences1, self.sentences2)]
        return EncodedPairs(sides[0], sides[1], self.scores)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count set to `n` inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def encode_splits(splits: dict[str, Pairs], backbone, model_cfg, cache_dir: str, device: str) -> dict[str, EncodedPairs]:
    """Every sentence through the frozen backbone once (cached on disk across runs), on
    model.encode_device; the vectors then go to `device`, where the adapter trains."""
    cache = EmbeddingCache(cache_dir, fingerprint(backbone))

    def encode(sentences: list[str]) -> np.ndarray:
        on = pick_device(model_cfg.encode_device)
        print(f"encoding {len(sentences)} new sentences on {on} (cached for later runs)")
        home = backbone.device
        backbone.to(on)
        # Called under the cache's lock, so no other process encodes now; sweep workers that wait
        # for this cache are idle: every core, whatever share of them this run was given.
        try:
            with torch_threads(max(torch.get_num_threads(), os.cpu_count() or 1)):
                return backbone.encode(sentences, batch_size=int(model_cfg.encode_batch_size),
                                       convert_to_numpy=True, show_progress_bar=True)
        finally:
            backbone.to(home)  # back where it was loaded: the card's memory is the runs' again

    # One cache call for all splits: a single progress bar, a single shard.
    sentences = [s for pairs in splits.values() for s in (*pairs.sentences1, *pairs.sentences2)]
    vectors = torch.from_numpy(cache.embed(sentences, encode)).to(device)
    encoded, start = {}, 0
    for name, pairs in splits.items():
        n = len(pairs)
        encoded[name] = EncodedPairs(vectors[start:start + n], vectors[start + n:start + 2 * n],
                                     torch.from_numpy(pairs.scores).to(device))
        start += 2 * n
    return encoded


def make_inputs(splits: dict[str, Pairs], backbone, cfg, device: str) -> dict[str, TrainingPairs]:
    """Per split: cached embeddings when `model.freeze_backbone` (the default), else sentences
    through the backbone (bf16 autocast per `train.precision`; `auto` is bf16 on CUDA)."""
    if cfg.model.freeze_backbone:
        return encode_splits(splits, backbone, cfg.model, cfg.paths.cache_dir, device)
    bf16 = cfg.train.precision == "bf16" or (cfg.train.precision == "auto" and device == "cuda")
    return {name: BackbonePairs(backbone, pairs, device, bf16, int(cfg.model.encode_batch_size))
            for name, pairs in splits.items()}
