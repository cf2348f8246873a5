"""NEXUS entry point: compose the Hydra config, check it, run the job(s).

    python launch.py +experiment=dendritic
    python launch.py -m +experiment=smoke seed=0,1,2 pai=history,fixed

Every job of a multirun is composed and checked before the first one starts, so a typo
costs a one-line error, not a half-finished sweep.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
FAILED_RUNS: list[str] = []


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def train(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from nexus.run import run

    run_dir = HydraConfig.get().runtime.output_dir
    if run(cfg, run_dir)["status"] != "completed":
        FAILED_RUNS.append(run_dir)


def main(argv: list[str] | None = None) -> int:
    from nexus.errors import UserError
    from nexus.preflight import preflight

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        preflight(CONFIG_DIR, argv)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    FAILED_RUNS.clear()
    sys.argv = [sys.argv[0], *argv]
    train()
    return 1 if FAILED_RUNS else 0


if __name__ == "__main__":
    sys.exit(main())
