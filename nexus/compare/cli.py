"""The nexus-compare command line (also `python -m nexus.compare`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from nexus.compare.report import build_report, verdict_line
from nexus.compare.runs import WandbError, load_folders, load_wandb_runs
from nexus.errors import UserError, report
from nexus.tracking import leave_wandb


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nexus-compare",
        description="Compare finished NEXUS runs (dendritic vs baseline) and write a report.",
    )
    parser.add_argument("dirs", nargs="*", metavar="DIR", help="run, sweep or Hydra multirun folders")
    parser.add_argument("--out", required=True, help="folder for report.md, report.html, table.csv, PNGs")
    parser.add_argument("--baseline", help="compare every configuration with this one (name or substring)")
    parser.add_argument("--param-matched", action="store_true",
                        help="also compare each dendritic configuration with the plain adapter (pai=disabled, "
                             "e.g. model.adapter=mlp) of its trained parameter count, within 1%%")
    parser.add_argument(
        "--wandb", metavar="ENTITY/PROJECT[/SWEEP]",
        help="also read runs from W&B (a reachable server), or from a folder of W&B run folders (offline runs)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if not args.dirs and not args.wandb:
            raise UserError("give at least one run folder or --wandb ENTITY/PROJECT")
        runs = load_folders(args.dirs)
        if args.wandb:
            runs += load_wandb_runs(args.wandb)
        out = Path(args.out)
        comparisons = build_report(runs, out, args.baseline, args.param_matched)
    except UserError as err:
        return leave_wandb(report(err)) if args.wandb else report(err)
    except WandbError as err:  # the server's side, not the user's input: exit 1
        report(err)
        return leave_wandb(1)
    for comparison in comparisons:
        print(verdict_line(comparison))
    print(f"report: {out / 'report.md'} and {out / 'report.html'}")
    return 0
