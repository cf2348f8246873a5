"""The trainable part on top of the frozen sentence embedding: `model.adapter=dense` (a Dense
layer, the one PAI grows dendrites on) or `model.adapter=mlp` (a plain residual MLP of any size,
to compare dendritic runs with plain adapters of as many parameters).

`build_layers` makes the plain torch layers that training (and PAI) work on. `adapter_module`
packages the trained layers for the saved model folder, without pickles:
- Dense, no dendrites: sentence-transformers' own `Dense` (safetensors + its config), so the
  folder loads with `SentenceTransformer(path)` on a machine without nexus;
- Dense with dendrites: `DendriticAdapter`, weights in safetensors and the structure in its
  config.json; loading perforates the plain layers again and grows the same dendrites (needs perforatedai);
- MLP: `MLPAdapter`, weights in safetensors and the structure in its config.json (needs nexus).
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
KINDS = ("dense", "mlp")
MATCH_TOLERANCE = 0.01  # model.adapter.match_params: the MLP's count within 1% of the target
WEIGHTS_FILE = "model.safetensors"
LEGACY_TYPE = "nexus.adapter.Adapter"  # modules.json type of folders with a pickled adapter.pt
RESAVE_HINT = "python -m nexus.model resave {old} NEW"


def build_layers(in_features: int, adapter_cfg) -> nn.Module:
    if adapter_cfg.kind == "mlp":
        return ResidualMLP(in_features, mlp_hidden(in_features, adapter_cfg), int(adapter_cfg.depth),
                           adapter_cfg.activation)
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


def mlp_params(in_features: int, hidden: int, depth: int) -> int:
    """Trainable parameters of ResidualMLP: in->hidden, depth-2 hidden->hidden, hidden->in."""
    return 2 * in_features * hidden + hidden + (depth - 2) * (hidden * hidden + hidden) + in_features


def mlp_hidden(in_features: int, adapter_cfg) -> int:
    """`hidden`, or with `match_params` the width whose count is nearest to it (refused beyond 1%)."""
    target, depth = adapter_cfg.match_params, int(adapter_cfg.depth)
    if target is None:
        return int(adapter_cfg.hidden)
    low, high = 1, max(1, int(target))  # the smallest width with at least `target` parameters
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if mlp_params(in_features, mid, depth) < target else (low, mid)
    hidden = min((low - 1, low) if low > 1 else (low,), key=lambda h: abs(mlp_params(in_features, h, depth) - target))
    params = mlp_params(in_features, hidden, depth)
    if abs(params - target) > MATCH_TOLERANCE * target:
        raise UserError(f"model.adapter.match_params={target}: no hidden width gets within 1% of it "
                        f"(depth {depth} on {in_features} features: the nearest, hidden {hidden}, has {params:,})")
    return hidden


class ResidualMLP(nn.Module):
    """y = x + W_out(act(... act(W_in x))): `depth` Linear layers, activations between them."""

    def __init__(self, in_features: int, hidden: int, depth: int, activation: str):
        super().__init__()
        widths = [in_features, *[hidden] * (depth - 1), in_features]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [ACTIVATIONS[activation](), nn.Linear(a, b)] if layers else [nn.Linear(a, b)]
        self.layers = nn.Sequential(*layers)
        # The residual branch starts at exactly zero: epoch 0 equals the zero-shot model (as the
        # Dense adapter's identity init does); the other layers keep torch's random init, so the
        # first steps move the last layer and gradients reach the rest from then on.
        with torch.no_grad():
            self.layers[-1].weight.zero_()
            self.layers[-1].bias.zero_()
        self.in_features, self.hidden, self.depth, self.activation = in_features, hidden, depth, activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


def adapter_module(layers: nn.Module, activation: str, forward_function: str | None) -> Module:
    """The trained `layers` (Linear or PAI-wrapped Linear, then the activation; or a ResidualMLP)
    as a sentence-transformers module; `forward_function`: PAI's dendrite nonlinearity, if PAI ran."""
    from nexus.growth.pai import dendrite_count

    if isinstance(layers, ResidualMLP):
        return MLPAdapter(layers.cpu())
    layers = layers.cpu()
    dendrites = dendrite_count(layers)
    if dendrites:
        return DendriticAdapter(layers, activation, dendrites, forward_function)
    # A PAI layer without dendrites computes its main Linear alone: a plain Dense.
    linear = getattr(layers[0], "main_module", layers[0])
    dense = Dense(linear.in_features, linear.out_features, activation_function=ACTIVATIONS[activation]())
    dense.linear.load_state_dict(linear.state_dict())
    return dense


def module_folder(cls, model_name_or_path: str, subfolder: str, kwargs: dict) -> Path:
    """The local folder of a saved module, as sentence-transformers resolves it."""
    return Path(cls.load_dir_path(model_name_or_path, subfolder=subfolder, token=kwargs.get("token"),
                                  cache_folder=kwargs.get("cache_folder"), revision=kwargs.get("revision"),
                                  local_files_only=kwargs.get("local_files_only", False)))


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

        folder = module_folder(cls, model_name_or_path, subfolder, kwargs)
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


class MLPAdapter(Module):
    """sentence-transformers module of a ResidualMLP: weights in safetensors, sizes in config.json."""

    config_keys: list[str] = ["in_features", "hidden", "depth", "activation"]

    def __init__(self, mlp: ResidualMLP):
        super().__init__()
        self.mlp = mlp
        self.in_features, self.hidden, self.depth, self.activation = mlp.in_features, mlp.hidden, mlp.depth, \
            mlp.activation

    def forward(self, features: dict) -> dict:
        features["sentence_embedding"] = self.mlp(features["sentence_embedding"])
        return features

    def get_embedding_dimension(self) -> int:
        return self.in_features

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        save_file({k: v.contiguous() for k, v in self.mlp.state_dict().items()}, str(Path(output_path) / WEIGHTS_FILE))

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "MLPAdapter":
        folder = module_folder(cls, model_name_or_path, subfolder, kwargs)
        try:
            config = json.loads((folder / "config.json").read_text())
            mlp = ResidualMLP(int(config["in_features"]), int(config["hidden"]), int(config["depth"]),
                              config["activation"])
            mlp.load_state_dict(load_file(folder / WEIGHTS_FILE), strict=True)  # tensors only: nothing is run
        except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as err:
            reason = (str(err).splitlines() or [""])[0]
            raise UserError(f"{folder}: not an MLP adapter this nexus can load ({type(err).__name__}: {reason})") \
                from None
        return cls(mlp.eval())


class Adapter(Module):
    """Folders saved before safe serialization name this class: refuse them, never unpickle."""

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", **kwargs) -> "Adapter":
        raise UserError(legacy_message(model_name_or_path))


def legacy_message(path) -> str:
    return (f"{path}: its adapter is a pickled module (adapter.pt), which loading would run as code; "
            f"if the folder is your own, re-save it: {RESAVE_HINT.format(old=path)}")
