"""On-disk embedding cache: with a frozen backbone each distinct sentence is encoded once, ever.

Layout: <cache_dir>/<backbone fingerprint>/shard-*.npz, each shard holding sentence keys
(sha1 of the text), vectors and a checksum. Shards are written to a temporary name and renamed,
under a file lock, so concurrent workers wait for one encoder instead of racing, and a reader
never sees a torn file. A shard whose checksum does not match is deleted and its sentences re-encoded.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
from filelock import FileLock

Encoder = Callable[[list[str]], np.ndarray]


def sentence_key(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> str:
    return hashlib.sha256(keys.tobytes() + vectors.tobytes()).hexdigest()


class EmbeddingCache:
    def __init__(self, cache_dir: str | Path, backbone_fingerprint: str):
        self.dir = Path(cache_dir).expanduser() / backbone_fingerprint
        self.dir.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.dir / ".lock"))

    def embed(self, sentences: list[str], encode: Encoder) -> np.ndarray:
        """Vectors for `sentences` (in order), encoding only those never seen before."""
        keys = [sentence_key(s) for s in sentences]
        with self.lock:
            stored = self._read_shards()
            missing = {k: s for k, s in zip(keys, sentences) if k not in stored}
            if missing:
                vectors = np.asarray(encode(list(missing.values())), dtype=np.float32)
                self._write_shard(list(missing), vectors)
                stored.update(zip(missing, vectors))
        return np.stack([stored[k] for k in keys])

    def _read_shards(self) -> dict[bytes, np.ndarray]:
        stored: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            try:
                with np.load(shard) as data:
                    keys, vectors, checksum = data["keys"], data["vectors"], str(data["checksum"])
                if _checksum(keys, vectors) != checksum:
                    raise ValueError("checksum mismatch")
            except Exception:  # noqa: BLE001  torn or corrupted: drop it, its sentences get re-encoded
                shard.unlink(missing_ok=True)
                continue
            stored.update(zip((k.tobytes() for k in keys), vectors))
        return stored

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        # uint8 rows, not numpy "S" strings: those drop trailing NUL bytes of a digest
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(-1, 20)
        name = f"shard-{uuid.uuid4().hex}"
        tmp = self.dir / f".{name}.tmp.npz"
        np.savez(tmp, keys=key_array, vectors=vectors, checksum=_checksum(key_array, vectors))
        os.replace(tmp, self.dir / f"{name}.npz")
