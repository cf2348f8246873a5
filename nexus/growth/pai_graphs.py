"""PAI's graphs where they matter: on restructure epochs and at the end of the run, not every epoch.

Perforated AI redraws its whole report (a 28x14-inch four-panel matplotlib figure, `pai/pai.png`,
plus its CSVs) inside every `add_validation_score` call. For a 384->384 adapter on cached
embeddings that redraw costs more than the epoch's training (BENCHMARKS.md has the profile: the
time goes to `savefig` and `tight_layout`). Turning PAI's drawing off
(`set_drawing_pai(False)`) is not an option: PAI then crashes later in its own plotting code.

`PAIGraphs` keeps PAI's drawing on and only changes *when* the per-epoch report is written:

- a call with a name (`_beforeSwitch_N`, `..._noImprove_lr_N`, `before_final`) marks a
  restructure or the end of training: it is drawn at once (its files keep that name);
- the plain report (`pai.png` and its CSVs, overwritten by every draw) is skipped and remembered,
  except after a restructure in the run's last epoch (the epoch cap, or PAI's `before_final`):
  once such a call returns, PAI's tracker is set up for the next cycle and cannot draw it
  (IndexError in PAI's plotting), so it is drawn inside the call as PAI does;
- `finish()` (at the end of the run, inside the run folder) draws the plain report once if the
  last one was skipped. PAI's graph functions only read the tracker and PAI changes nothing
  between the end of `add_validation_score` and the next epoch's call, so the files at the end
  are those an every-epoch run leaves (same CSV contents; only `paiTimes.csv` holds wall times).

`every_epoch=True` (config `pai.graphs_every_epoch`) leaves PAI alone: it draws every epoch.

Usage, with the run folder as working directory for both calls (PAI writes relative paths):

    graphs = PAIGraphs(every_epoch=False)
    with graphs.epoch(last=epoch == max_epochs - 1):
        net, restructured, complete = GPA.pai_tracker.add_validation_score(score, net)
    ...
    graphs.finish()
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field


@dataclass
class PAIGraphs:
    every_epoch: bool = False
    # The plain report on disk may be older than the tracker: true until a plain draw happens, so a
    # resumed run (fresh object, files of unknown age) also redraws once at the end.
    stale: bool = True
    counts: dict = field(default_factory=lambda: {"drawn": 0, "skipped": 0, "final": 0})

    @contextlib.contextmanager
    def epoch(self, last: bool = False):
        """Around one `GPA.pai_tracker.add_validation_score(...)` call; `last`: the epoch cap's epoch."""
        if self.every_epoch:
            yield
            self.stale = False
            return
        from perforatedai import globals_perforatedai as GPA

        tracker = GPA.pai_tracker
        real = tracker.save_graphs  # bound method of PAI's tracker class
        restructuring, final = False, last

        def save_graphs(extra_string: str = "") -> None:
            nonlocal restructuring, final
            if extra_string:  # a switch, a failed dendrite try, or the final network
                restructuring, final = True, final or extra_string == "before_final"
            if extra_string or (restructuring and final):
                real(extra_string)
                self.counts["drawn"] += 1
                if not extra_string:
                    self.stale = False
            else:
                self.stale = True
                self.counts["skipped"] += 1

        # An instance attribute shadows the class method for PAI's own `GPA.pai_tracker.save_graphs(...)`
        # calls; PAI updates its tracker in place (from_string), never replaces it mid-call.
        tracker.save_graphs = save_graphs
        try:
            yield
        finally:
            # Leave no trace on the tracker: it is pickled into the run's checkpoint.
            if tracker.__dict__.get("save_graphs") is save_graphs:
                del tracker.save_graphs

    def finish(self) -> bool:
        """At the end of the run (run folder as working directory): the plain report for the final
        state, if the last per-epoch one was skipped. Returns whether it drew."""
        if self.every_epoch or not self.stale:
            return False
        from perforatedai import globals_perforatedai as GPA

        GPA.pai_tracker.save_graphs()
        self.stale = False
        self.counts["final"] += 1
        return True
