"""A run's `model/` folder: what a team shares, so it loads without running anyone's code.

    python -m nexus.model resave OLD NEW     # re-save a folder written before safe serialization

Baselines with the Dense adapter (and PAI runs that kept no dendrite) are plain
sentence-transformers models: `SentenceTransformer(path)` loads them without nexus. Dendritic
models (nexus + perforatedai installed) and MLP adapters (nexus installed) load with `load_model`. The folder's README.md is the model card: data, recipe,
Spearman figures, dendrites, parameters, and the run that made it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from nexus.errors import UserError

CARD_KEYS = ("zero_shot/val_spearman", "zero_shot/test_spearman", "best/val_spearman", "best/epoch",
             "test/spearman", "test/pearson", "pai/dendrites", "pai/params")


def card_metadata(summary: dict, run_dir: Path, wandb_id: str | None) -> dict:
    """What the model is and where it came from: the model card's facts, and the W&B artifact's metadata."""
    config = summary["config"]
    return {
        "run_folder": str(Path(run_dir).resolve()),
        "wandb_run_id": wandb_id,
        "experiment": summary["experiment"],
        "pai": summary["pai"],
        "seed": summary["seed"],
        "configuration_id": summary["configuration_id"],
        "data": {key: config["data"][key] for key in ("name", "train_path", "val_path", "test_path", "limit")
                 if key in config["data"]},
        **{key: summary.get(key) for key in CARD_KEYS},  # absent when a failed run reaches W&B
        "recipe": config,
    }


def save_model(path: Path, backbone, layers, cfg, card: dict, blob_dir: Path) -> None:
    """Backbone modules + the adapter (see nexus.adapter) as one SentenceTransformer folder, with its card.

    Every run of a frozen backbone saves the same 87 MB of transformer weights: large files are
    hard-linked to one content-addressed copy in `blob_dir`, so a 36-run sweep stores them once.
    """
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.model_card import SentenceTransformerModelCardData

    from nexus.adapter import adapter_module

    forward_function = None if cfg.pai.mode == "disabled" else cfg.pai.forward_function
    adapter = adapter_module(layers, cfg.model.adapter.activation, forward_function)
    kind = {"DendriticAdapter": "dendritic", "MLPAdapter": "residual MLP"}.get(type(adapter).__name__, "Dense")
    card_data = SentenceTransformerModelCardData(
        model_name=f"NEXUS {kind} adapter on all-MiniLM-L6-v2 "
                   f"({card['experiment']}, pai={card['pai']}, seed {card['seed']})",
        language="en",
        tags=["sentence-transformers", "sentence-similarity", "nexus",
              *(["perforatedai"] if kind == "dendritic" else [])],
        local_files_only=True, generate_widget_examples=False)
    model = SentenceTransformer(modules=[*backbone.children(), adapter], device="cpu", model_card_data=card_data)
    model.max_seq_length = backbone.max_seq_length
    model.save(str(path))
    add_card_section(path / "README.md", card, kind)
    for file in path.rglob("*"):
        if file.is_file() and file.stat().st_size > 1 << 20:
            share_identical_file(file, blob_dir)


LOAD_WITH_NEXUS = "from nexus.model import load_model  # needs nexus{} installed\nmodel = load_model(path)"
CARD_ADAPTERS = {  # kind -> (what the card calls it, how to load it)
    "Dense": ("a Dense adapter",
              "from sentence_transformers import SentenceTransformer\nmodel = SentenceTransformer(path)"),
    "dendritic": ("a Dense adapter grown with Perforated AI dendrites", LOAD_WITH_NEXUS.format(" and perforatedai")),
    "residual MLP": ("a residual MLP adapter (no dendrites)", LOAD_WITH_NEXUS.format("")),
}


def add_card_section(readme: Path, card: dict, kind: str) -> None:
    """Our facts in sentence-transformers' card, before its generic usage section."""
    adapter, load = CARD_ADAPTERS[kind]
    rows = "\n".join(f"| {key} | {card[key]:.4f} |" if isinstance(card[key], float) else f"| {key} | {card[key]} |"
                     for key in CARD_KEYS)
    section = f"""## NEXUS run

Trained by NEXUS: a frozen all-MiniLM-L6-v2 and {adapter},
on {card['data'].get('name', 'custom pairs')} (train `{card['data']['train_path']}`, dev `{card['data']['val_path']}`,
test `{card['data']['test_path']}`{limits(card['data'].get('limit'))}). The saved adapter is the best-dev one; test Spearman is measured once, on it.

| | |
|---|---|
{rows}

- Run folder: `{card['run_folder']}`
- W&B run: {f"`{card['wandb_run_id']}`" if card['wandb_run_id'] else 'none (logger off)'}
- Configuration: `{card['configuration_id']}` (experiment `{card['experiment']}`, pai `{card['pai']}`, seed {card['seed']})

Load it:

```python
{load}
```

<details><summary>Recipe (the composed Hydra config)</summary>

```yaml
{yaml.safe_dump(card['recipe'], sort_keys=False).rstrip()}
```

</details>

"""
    text = readme.read_text()
    at = text.find("## Usage")
    readme.write_text(text[:at] + section + text[at:] if at >= 0 else text + "\n" + section)


def limits(limit: dict | None) -> str:
    kept = {split: n for split, n in (limit or {}).items() if n is not None}
    return "; first rows only: " + ", ".join(f"{split} {n}" for split, n in kept.items()) if kept else ""


def share_identical_file(file: Path, blob_dir: Path) -> None:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            digest.update(chunk)
    blob = blob_dir / digest.hexdigest()
    blob_dir.mkdir(parents=True, exist_ok=True)
    try:
        if not blob.exists():
            os.link(file, blob)  # the first copy becomes the blob: nothing to replace
            return
        tmp = file.with_name(f".{file.name}.link")
        os.link(blob, tmp)
        os.replace(tmp, file)
    except OSError:  # another filesystem, or links not allowed: keep the plain copy
        pass


def module_types(path: Path) -> list[str]:
    try:
        return [m["type"] for m in json.loads((path / "modules.json").read_text())]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a sentence-transformers model folder ({type(err).__name__}: {err})") from None


def load_model(path, device: str | None = None):
    """A saved model folder as a SentenceTransformer; dendritic and MLP adapters are rebuilt from
    their safetensors weights and config. Folders with a pickled adapter are refused, never unpickled."""
    from sentence_transformers import SentenceTransformer

    from nexus.adapter import LEGACY_TYPE, DendriticAdapter, MLPAdapter, legacy_message

    path = Path(path).expanduser()
    types = module_types(path)
    if LEGACY_TYPE in types:
        raise UserError(legacy_message(path))
    ours = {f"{cls.__module__}.{cls.__name__}": cls for cls in (DendriticAdapter, MLPAdapter)}
    if not ours.keys() & set(types):
        return SentenceTransformer(str(path), device=device)
    # Only our classes are resolved here (to the already imported ones); any other class outside
    # sentence-transformers still needs trust_remote_code, which is not given: a folder from
    # someone else cannot choose code to import. (sentence-transformers' own, private mechanism.)
    return SentenceTransformer._load_with_module_classes(str(path), ours, device=device)


def resave(old: Path, new: Path) -> None:
    """Re-save a folder whose adapter is a pickled module (adapter.pt) in the safe format.

    Unpickling runs whatever code the file carries: do this only for a folder you trust (your own)."""
    import torch

    from nexus.adapter import ACTIVATIONS, LEGACY_TYPE, adapter_module

    types = module_types(old)
    if LEGACY_TYPE not in types:
        raise UserError(f"{old}: no pickled adapter in this folder; nothing to re-save")
    if new.exists():
        raise UserError(f"{new}: already exists; choose a new folder")
    modules = json.loads((old / "modules.json").read_text())
    entry = modules[types.index(LEGACY_TYPE)]
    try:
        layers = torch.load(old / entry["path"] / "adapter.pt", weights_only=False, map_location="cpu")
        linear = getattr(layers[0], "layer_array", [layers[0]])[-1]
        activation = next(name for name, cls in ACTIVATIONS.items() if type(layers[-1]) is cls)
    except Exception as err:  # noqa: BLE001  whatever the pickle held, it is not an adapter this format knows
        reason = (str(err).splitlines() or [""])[0]
        raise UserError(f"{old}: cannot read its pickled adapter ({type(err).__name__}: {reason})") from None
    if len(getattr(layers[0], "skip_weights", [])):
        # perforatedai's inference wrapper with two or more dendrites: mapping its weights back
        # onto a network PAI can rebuild is not implemented.
        raise UserError(f"{old}: a pickled adapter with several dendrites cannot be re-saved; "
                        "run its configuration again to get a safe model folder")
    # Anything else computed its Linear alone (a lone dendrite was dropped by PAI's wrapper).
    plain = torch.nn.Sequential(linear, layers[-1])
    adapter = adapter_module(plain, activation, None)
    shutil.copytree(old, new, ignore=shutil.ignore_patterns(entry["path"]))
    (new / entry["path"]).mkdir()
    adapter.save(str(new / entry["path"]))
    entry["type"] = f"{type(adapter).__module__}.{type(adapter).__name__}"
    (new / "modules.json").write_text(json.dumps(modules, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nexus.model", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("resave", help="re-save a model folder with a pickled adapter (your own folders "
                                                 "only: reading it runs its code) in the safe format")
    command.add_argument("old", type=Path)
    command.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    try:
        resave(args.old.expanduser(), args.new.expanduser())
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"re-saved {args.old} -> {args.new}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
