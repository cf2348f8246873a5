"""Run a W&B sweep file on this machine, without a W&B server.

    python -m nexus.sweep sweeps/pai.yaml [--workers N] [--gpus 0,1|all [--runs-per-gpu K]] [--count K]
                                          [--retry-failed] [--seed N] [--dir DIR] [--override KEY=VALUE ...]
                                          [--no-fork]
    python -m nexus.sweep check sweeps/pai.yaml   # only the checks, e.g. before `wandb sweep`

What an agent would do, offline: W&B's own search engine (the open-source `sweeps` package, the
one the W&B server runs) picks each parameter set, for grid, random and bayes, and the command
line is built by the functions `wandb agent` uses. To that command the runner appends the
--override values, then its own two overrides: `hydra.run.dir=DIR/runs/<run>` and
`++logger.sweep=<sweep name>` (++ because `logger=none` has no such key), so every run of the
sweep carries the W&B tag `sweep:<name>`; its W&B group stays its configuration without the seed,
as for a run started any other way. Two deliberate differences:

- ${interpreter} is this Python (sys.executable) where the agent puts `python` from PATH, so the
  runs use the environment the runner was started from.
- Fork mode. When the command runs NEXUS's own launch.py with this Python (and the platform has
  fork), each run is a forked child of the runner instead of a fresh process: the runner imports
  launch.py and what its runs import (torch, sentence-transformers, W&B, perforatedai) once, and
  each child starts as `python launch.py ARGS` would (its own process group, no stdin, stdout and
  stderr in the run's logs, SIGTERM at its default, the run's environment, the same sys.argv)
  and calls launch.main(ARGS). A fresh process spends ~15 s importing and exiting before and
  after a run; a fork, well under a second. The runner itself runs no torch computation and
  starts no W&B, so nothing is forked mid-way (thread pools, W&B's service). Each run's recorded
  command is still the equivalent command line; --no-fork starts every run as that fresh
  process, as `wandb agent` does. Where a GPU is seen, the runner keeps CUDA out of its own
  process (PYTORCH_NVML_BASED_CUDA_CHECK=1 before the imports: CUDA cannot start in a child
  forked from a process that started it) and forks runs only once a forked probe has started
  CUDA; otherwise each run is a fresh process and the first line says why.

Checks, before any run (and all that `check` does): the sweep schema (what `wandb sweep` checks),
the runs' arguments (launch.py's own preflight on a few parameter sets covering every listed
value), YAML 1.1 booleans where the config holds none, and numbers YAML 1.1 reads as strings
(1e-4: W&B would store the string for the swept key; 1.0e-4 is a number). `check` prints
`ok: FILE (N runs for grid)` or every number problem, a line each; exit code 2 for any problem.

Placement: --workers N runs at once (default 1), each with OMP_NUM_THREADS = cores / N unless it
is set. --gpus 0,1 (or all: the cards nvidia-smi lists, or those CUDA_VISIBLE_DEVICES names)
gives each run one card as its CUDA_VISIBLE_DEVICES, spread evenly (the next run goes to the card
with the fewest in flight), --runs-per-gpu K at once on each (workers default to cards x K);
sweep.json records each run's card. Without --gpus, runs see what the runner sees (GPU 0 of
several, for torch) and the first line says so.

DIR (default $NEXUS_HOME/sweeps/<sweep file stem>) holds `sweep.json` (the state, rewritten
atomically after every change), `sweep.lock` (held while a runner works on DIR: one runner per
DIR) and runs/<run>/ (the Hydra run folder, plus the run's stdout.log and stderr.log).

Stopping and going on: Ctrl-C (or SIGTERM) stops the runs in flight; run the same command again
and only what is missing runs. A run is done once its folder's summary.json says completed or
failed (or it exited non-zero: recorded with its last stderr line, and the sweep goes on). A run
that was in flight goes on in its own folder with the same command, so launch.py (resume=auto)
continues from the checkpoint of its last finished epoch: no epoch is lost or done twice.
After a kill -9 of the runner its runs live on as orphans: the next runner stops them first (a
run's process is known by its pid and start time, so a reused pid is never taken for it).
--retry-failed runs each failed parameter set again from the start, in a fresh folder
(run-007-attempt2, the failed one kept). --seed N makes random and bayes proposals reproducible:
the engine's random generators are seeded from N and the number of runs so far.

Modules, each importing only those above it: state (a run as sweep.json records it), sweep_file
(loading, the agent's command line, checks), placement (workers, GPUs, threads), processes (fresh
or forked runs, orphans, process groups), results (the table), runner (the state, proposing,
starting and reaping runs), cli.
"""

from nexus.sweep.cli import main, run_sweep
from nexus.sweep.processes import orphan_alive, process_start
from nexus.sweep.runner import SweepRunner, last_line
from nexus.sweep.state import STATE_FILE, SweepRun
from nexus.sweep.sweep_file import agent_command, import_sweeps, load_sweep_file

__all__ = ["STATE_FILE", "SweepRun", "SweepRunner", "agent_command", "import_sweeps", "last_line",
           "load_sweep_file", "main", "orphan_alive", "process_start", "run_sweep"]
