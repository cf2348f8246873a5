"""Full fine-tuning inputs: sentences go through the backbone at every batch, so it trains too.

`LivePairs` has the two methods the loop uses on cached embeddings (`embed_batch`, `encoded`),
so the same loop trains a frozen or an unfrozen backbone. No embedding cache in this mode:
the backbone changes every step.
"""

from __future__ import annotations

import torch

from nexus.data import Pairs
from nexus.evaluate import EncodedPairs


class LivePairs:
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
