"""The trainable part: a Dense layer on top of the frozen sentence embedding.

`build_layers` makes the plain torch layers that training (and PAI) work on. `adapter_module`
packages the trained layers for the saved model folder, without pickles:
- no dendrites: sentence-transformers' own `Dense` (safetensors + its config), so the folder
  loads with `SentenceTransformer(path)` on a machine without nexus;
- dendrites: `DendriticAdapter`, weights in safetensors and the structure in its config.json;
  loading perforates the plain layers again and grows the same dendrites (needs perforatedai).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from sentence_transformers.base.modules import Module
from sentence_transformers.sentence_transformer.modules import Dense
from torch import nn

from nexus.errors import UserError

ACTIVATIONS = {"identity": nn.Identity, "tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
INITS = ("identity", "random")
WEIGHTS_FILE = "model.safetensors"
LEGACY_TYPE = "nexus.adapter.Adapter"  # modules.json type of folders with a pickled adapter.pt
RESAVE_HINT = "python -m nexus.model resave {old} NEW"


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


def adapter_module(layers: nn.Sequential, activation: str, forward_function: str | None) -> Module:
    """The trained `layers` (Linear or PAI-wrapped Linear, then the activation) as a
    sentence-transformers module; `forward_function`: PAI's dendrite nonlinearity, if PAI ran."""
    from nexus.growth.pai import dendrite_count

    layers = layers.cpu()
    dendrites = dendrite_count(layers)
    if dendrites:
        return DendriticAdapter(layers, activation, dendrites, forward_function)
    # A PAI layer without dendrites computes its main Linear alone: a plain Dense.
    linear = getattr(layers[0], "main_module", layers[0])
    dense = Dense(linear.in_features, linear.out_features, activation_function=ACTIVATIONS[activation]())
    dense.linear.load_state_dict(linear.state_dict())
    return dense


class DendriticAdapter(Module):
    """sentence-transformers module of a Dense layer with PAI dendrites."""

    config_keys: list[str] = ["in_features", "out_features", "activation", "dendrites", "forward_function"]

    def __init__(self, layers: nn.Sequential, activation: str, dendrites: int, forward_function: str):
        super().__init__()
        self.layers = layers
        linear = layers[0].main_module
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.activation, self.dendrites, self.forward_function = activation, dendrites, forward_function

    def forward(self, features: dict) -> dict:
        from perforatedai import globals_perforatedai as GPA

        from nexus.growth.pai import FORWARD_FUNCTIONS

        # PAI reads the dendrites' nonlinearity from its global settings at every call; another
        # model or run in this process may have changed them since this one was loaded.
        GPA.pc.set_pai_forward_function(FORWARD_FUNCTIONS[self.forward_function])
        features["sentence_embedding"] = self.layers(features["sentence_embedding"])
        return features

    def get_embedding_dimension(self) -> int:
        return self.out_features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        # Own tensors each (safetensors refuses shared memory); PAI's training history left out.
        weights = {k: v.detach().clone().contiguous() for k, v in self.layers.state_dict().items()
                   if k != "tracker_string"}
        save_file(weights, str(Path(output_path) / WEIGHTS_FILE))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "DendriticAdapter":
        from nexus.growth.pai import rebuild_dendritic

        folder = Path(cls.load_dir_path(model_name_or_path, subfolder=subfolder, token=kwargs.get("token"),
                                        cache_folder=kwargs.get("cache_folder"), revision=kwargs.get("revision"),
                                        local_files_only=kwargs.get("local_files_only", False)))
        try:
            config = json.loads((folder / "config.json").read_text())
            weights = load_file(folder / WEIGHTS_FILE)  # tensors only: nothing in the file is run
            layers = nn.Sequential(nn.Linear(int(config["in_features"]), int(config["out_features"])),
                                   ACTIVATIONS[config["activation"]]())
            net = rebuild_dendritic(layers, int(config["dendrites"]), config["forward_function"], weights)
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as err:
            reason = (str(err).splitlines() or [""])[0]
            raise UserError(f"{folder}: not a dendritic adapter this nexus can load ({type(err).__name__}: {reason})") \
                from None
        return cls(net, config["activation"], int(config["dendrites"]), config["forward_function"])


class Adapter(Module):
    """Folders saved before safe serialization name this class: refuse them, never unpickle."""

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "Adapter":
        raise UserError(legacy_message(model_name_or_path))


def legacy_message(path) -> str:
    return (f"{path}: its adapter is a pickled module (adapter.pt), which loading would run as code; "
            f"if the folder is your own, re-save it: {RESAVE_HINT.format(old=path)}")
