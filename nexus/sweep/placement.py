"""Where a sweep's runs go: how many at once, which GPU each gets (CUDA_VISIBLE_DEVICES, one card
a run), and how many CPU threads (OMP_NUM_THREADS)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from nexus.errors import UserError


def visible_gpus(env: dict) -> list[str]:
    """The GPUs runs can be given, as CUDA_VISIBLE_DEVICES names them: those it lists when set (a
    SLURM job's cards, say), else every card `nvidia-smi -L` lists; none without NVIDIA's driver.
    Not torch: a runner that touched CUDA could not fork runs that use it."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        cards = []
        for card in (c.strip() for c in listed.split(",")):
            if not card or card.startswith("-"):  # CUDA ignores the list from an invalid entry on
                break
            cards.append(card)
        return cards
    try:
        found = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, _ in enumerate(line for line in found.stdout.splitlines() if line.startswith("GPU "))]


def chosen_gpus(text: str, visible: list[str]) -> list[str]:
    """--gpus (`all` or numbers such as 0,1, counted as CUDA counts the visible cards) as the
    CUDA_VISIBLE_DEVICES value of each card; numbers are checked where the cards can be seen."""
    if text == "all":
        if not visible:
            raise UserError("--gpus all: no GPU seen (nvidia-smi lists none, CUDA_VISIBLE_DEVICES names none)")
        return list(visible)
    numbers = [n.strip() for n in text.split(",")]
    if not all(n.isdigit() for n in numbers):
        raise UserError(f"--gpus: expected GPU numbers such as 0,1 or all, got {text!r}")
    if len(set(map(int, numbers))) < len(numbers):
        raise UserError(f"--gpus: a GPU listed twice in {text!r} (--runs-per-gpu puts more runs on each)")
    for n in map(int, numbers):
        if visible and n >= len(visible):
            raise UserError(f"--gpus: no GPU {n} here ({len(visible)} seen: 0-{len(visible) - 1})")
    return [visible[int(n)] if visible else str(int(n)) for n in numbers]


@dataclass
class Placement:
    workers: int  # runs at once
    gpus: list[str]  # a run's CUDA_VISIBLE_DEVICES is one of these; []: runs see what the runner sees
    threads: str | None  # each run's OMP_NUM_THREADS; None: the runner's environment decides
    note: str = ""  # for the runner's first line
    sees_gpus: bool = False  # whether runs may use CUDA: a GPU seen by the runner or given with --gpus

    def card(self, busy: list[str]) -> str | None:
        """The GPU for the next run: the one with the fewest runs in flight (`busy`: their cards),
        the first listed on a tie, so runs spread evenly and a slot freed on a card is refilled there."""
        return min(self.gpus, key=busy.count) if self.gpus else None

    def env(self, base: dict, card: str | None) -> dict:
        env = dict(base)
        if self.threads is not None:
            env["OMP_NUM_THREADS"] = self.threads
        if card is not None:
            env["CUDA_VISIBLE_DEVICES"] = card
        return env


def plan(workers: int | None, gpus: str | None, runs_per_gpu: int | None, env: dict) -> Placement:
    """The placement for --workers, --gpus and --runs-per-gpu; UserError for a bad combination."""
    if runs_per_gpu is not None and gpus is None:
        raise UserError("--runs-per-gpu: only with --gpus (e.g. --gpus all --runs-per-gpu 2)")
    visible = visible_gpus(env)
    cards = chosen_gpus(gpus, visible) if gpus is not None else []
    workers = workers or len(cards) * (runs_per_gpu or 1) or 1
    # N runs on the cores: torch's default (all cores per run) oversubscribes them.
    threads = str(max(1, (os.cpu_count() or 1) // workers)) if workers > 1 and "OMP_NUM_THREADS" not in env \
        else None
    if cards:
        note = f", one GPU each: CUDA_VISIBLE_DEVICES={' or '.join(cards)}"
    elif len(visible) > 1:
        note = f"; {len(visible)} GPUs seen, runs share GPU 0 (use --gpus)"
    else:
        note = ""
    return Placement(workers, cards, threads, note, bool(visible or cards))
