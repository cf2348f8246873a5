"""Full fine-tuning throughput: our loop against sentence-transformers' own trainer, same GPU, same call.

    python -m benchmarks.bench_finetune --model PATH [--epochs 1] [--out result.json]   # from the repository root

1. Load STS-B train pairs.
2. Ours: nexus's training loop (BackbonePairs + identity adapter), CosineSimilarityLoss, batch 16, bf16.
3. Theirs: SentenceTransformerTrainer with the same model, loss, batch size and precision.
4. After a warm-up counted for neither, alternate theirs and ours `--reps` times; print training
   pairs per second and the ratio of the medians. Both are timed around the training call itself
   (CUDA synchronised), data already in memory, no evaluation or saving inside.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time

import torch
from omegaconf import OmegaConf

from nexus.adapter import build_layers
from nexus.compose import compose
from nexus.data import load_splits
from nexus.inputs import BackbonePairs
from nexus.train import train_one_epoch


def load_train_pairs(limit: int | None):
    return load_splits(compose([f"data.limit.train={limit or 'null'}"]).data)["train"]


def versions() -> dict:
    """What the figures depend on besides the card."""
    import sentence_transformers
    import transformers

    return {"torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "sentence_transformers": sentence_transformers.__version__}


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ours(model_path: str, pairs, epochs: int, batch_size: int, bf16: bool, device: str) -> float:
    from sentence_transformers import SentenceTransformer

    backbone = SentenceTransformer(model_path, device=device)
    net = build_layers(backbone.get_embedding_dimension(), OmegaConf.create(
        {"kind": "dense", "out_features": backbone.get_embedding_dimension(), "init": "identity",
         "activation": "identity"})).to(device)
    optimizer = torch.optim.AdamW([{"params": net.parameters()}, {"params": backbone.parameters(), "lr": 2e-5}], lr=1e-4)
    inputs = BackbonePairs(backbone, pairs, device, bf16, 128)
    generator = torch.Generator().manual_seed(0)
    synchronize()
    started = time.perf_counter()
    for _ in range(epochs):
        train_one_epoch(net, optimizer, inputs, batch_size, generator)
    synchronize()
    return epochs * len(pairs) / (time.perf_counter() - started)


def theirs(model_path: str, pairs, epochs: int, batch_size: int, bf16: bool, device: str) -> float:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    model = SentenceTransformer(model_path, device=device)
    dataset = Dataset.from_dict({"sentence1": pairs.sentences1, "sentence2": pairs.sentences2,
                                 "score": [float(s) for s in pairs.scores]})
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=epochs, per_device_train_batch_size=batch_size, bf16=bf16,
            learning_rate=2e-5, eval_strategy="no", save_strategy="no", report_to="none", logging_steps=10_000,
            seed=0)
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset,
                                             loss=CosineSimilarityLoss(model))
        synchronize()
        started = time.perf_counter()
        trainer.train()
        synchronize()
    return epochs * len(pairs) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_finetune", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a SentenceTransformer folder (all-MiniLM-L6-v2)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions of theirs and ours")
    parser.add_argument("--limit", type=int, default=None, help="first N training pairs (smoke)")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = device == "cuda"
    pairs = load_train_pairs(args.limit)
    result = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "pairs": len(pairs),
              "epochs": args.epochs, "batch_size": args.batch_size, "bf16": bf16, **versions(),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python -m benchmarks.bench_finetune " + " ".join(sys.argv[1:] if argv is None else argv)}
    # A short warm-up (CUDA context, cuBLAS handles) counted for neither, then both in turn.
    ours(args.model, load_train_pairs(320), 1, args.batch_size, bf16, device)
    result["theirs_pairs_per_s"], result["ours_pairs_per_s"] = [], []
    for _ in range(args.reps):
        result["theirs_pairs_per_s"].append(theirs(args.model, pairs, args.epochs, args.batch_size, bf16, device))
        result["ours_pairs_per_s"].append(ours(args.model, pairs, args.epochs, args.batch_size, bf16, device))
    result["ratio_of_medians"] = statistics.median(result["ours_pairs_per_s"]) / statistics.median(
        result["theirs_pairs_per_s"])
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
