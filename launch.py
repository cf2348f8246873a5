"""NEXUS entry point: compose the Hydra config, check it, run the job(s), exit with their status.

    python launch.py +experiment=dendritic
    python launch.py -m +experiment=smoke seed=0,1,2 pai=history,fixed

Every job of a multirun is composed and checked before the first one starts, so a typo
costs a one-line error, not a half-finished sweep. Exit codes: 0 every job completed,
1 a job failed or was interrupted, 2 bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from nexus.compose import CONFIG_DIR, MULTIRUN_FLAGS


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def train(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from nexus.config import group_choices
    from nexus.run import run
    from nexus.tracking import SweepRunWithoutWandb

    runtime = HydraConfig.get().runtime
    try:
        run(cfg, runtime.output_dir, group_choices(runtime.choices))
    except SweepRunWithoutWandb as err:  # no summary.json says completed: main() exits 1
        print(f"run failed: {err}", file=sys.stderr)


def all_jobs_completed(output_dir: Path, multirun: bool, since: float) -> bool:
    """Read each job's summary.json: with joblib or submitit the jobs ran in other processes."""
    from nexus.run_folder import is_completed

    if multirun:
        jobs = [c.parent.parent for c in output_dir.glob("**/.hydra/config.yaml") if c.stat().st_mtime >= since]
    else:
        jobs = [output_dir]
    return bool(jobs) and all(is_completed(job) for job in jobs)


def main(argv: list[str] | None = None) -> int:
    from nexus.config import hydra_spelling
    from nexus.errors import UserError, report
    from nexus.preflight import preflight

    argv = hydra_spelling(sys.argv[1:] if argv is None else list(argv))
    try:
        output_dir = preflight(argv)
    except UserError as err:
        return report(err)
    multirun = any(a in MULTIRUN_FLAGS for a in argv)
    if output_dir is not None:
        # Pin the folder checked above: Hydra would resolve ${now:...} again, to another one.
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        if not any(a.startswith(f"{key}=") for a in argv):
            argv.append(f"{key}='{output_dir}'".replace("\\", "\\\\"))
    sys.argv = [sys.argv[0], *argv]
    started = time.time()
    train()
    if output_dir is None:
        return 0
    return 0 if all_jobs_completed(Path(output_dir), multirun, started - 1) else 1


if __name__ == "__main__":
    from nexus.tracking import end_process

    sys.exit(end_process(main()))
