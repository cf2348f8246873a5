"""The trainable part: a Dense layer on top of the frozen sentence embedding.

`build_layers` makes the plain torch layers that training (and PAI) work on; `Adapter` packages
them as a sentence-transformers module so the saved model folder reloads with
`SentenceTransformer(path)`. The layers are saved as a whole pickled module, not a state dict,
because dendrites change the structure, not only the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from sentence_transformers.base.modules import Module
from torch import nn

from nexus.errors import UserError

ACTIVATIONS = {"identity": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
INITS = ("identity", "random")
LAYERS_FILE = "adapter.pt"


def build_layers(in_features: int, adapter_cfg) -> nn.Sequential:
    out_features = int(adapter_cfg.out_features)
    linear = nn.Linear(in_features, out_features)
    if adapter_cfg.init == "identity":
        if out_features != in_features:
            raise UserError(
                f"model.adapter.init=identity needs out_features == {in_features} (the backbone's size), "
                f"got {out_features}"
            )
        # Epoch 0 then equals the zero-shot model: training can only start from there.
        with torch.no_grad():
            linear.weight.copy_(torch.eye(in_features))
            linear.bias.zero_()
    return nn.Sequential(linear, ACTIVATIONS[adapter_cfg.activation]())


class Adapter(Module):
    """sentence-transformers module wrapping the trained layers (dendrites included)."""

    config_keys: list[str] = []

    def __init__(self, layers: nn.Module | None = None):
        super().__init__()
        self.layers = layers if layers is not None else nn.Identity()

    def forward(self, features: dict) -> dict:
        features["sentence_embedding"] = self.layers(features["sentence_embedding"])
        return features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        torch.save(self.layers, Path(output_path) / LAYERS_FILE)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "Adapter":
        folder = cls.load_dir_path(
            model_name_or_path,
            subfolder=subfolder,
            token=kwargs.get("token"),
            cache_folder=kwargs.get("cache_folder"),
            revision=kwargs.get("revision"),
            local_files_only=kwargs.get("local_files_only", False),
        )
        # Our own file, written by save(): unpickling a whole module is intended here.
        return cls(torch.load(Path(folder) / LAYERS_FILE, weights_only=False, map_location="cpu"))
