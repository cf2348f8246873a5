"""Perforated AI's dendrites as a growth policy (`PAIGrowth`), with PAI set up for unattended runs.

- `PAIGrowth`: the `nexus.growth.Growth` interface over PAI's tracker. The loop tells it each
  epoch's dev score; PAI may add dendrites, reload its best model, or declare training complete.
- PAI's settings (`reset_pai`, `configure_pai`): PAI keeps them in module globals, so each run
  sets them from scratch.
- The prompt guard (`no_interactive_prompts`): PAI's pdb/input prompts raise instead of hanging.
- Saved models (`dendrite_count`, `rebuild_dendritic`): used by `nexus.adapter` to save and load
  a dendritic adapter without PAI's tracker.
"""

from __future__ import annotations

import builtins
import contextlib
import pdb
from pathlib import Path

import torch
from torch import nn

from nexus.growth import OPTIMIZERS, Decision, optimizer_args
from nexus.growth.pai_graphs import PAIGraphs

FORWARD_FUNCTIONS = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}
PAI_FOLDER = "pai"  # PAI's save_name: its graphs, CSVs and snapshots, inside the run folder


class PAIPromptError(RuntimeError):
    """perforatedai wanted to stop at an interactive prompt: an unattended run must fail instead."""


@contextlib.contextmanager
def no_interactive_prompts():
    """perforatedai calls pdb.set_trace() or input() on some unconfirmed settings; a sweep worker
    would hang there forever. Inside this block either one raises a clear error instead."""

    def refuse(*args, **kwargs):
        raise PAIPromptError("perforatedai stopped at an interactive prompt (pdb/input); "
                             f"see {PAI_FOLDER}/console.log for the setting it wanted confirmed")

    saved = pdb.set_trace, builtins.input
    pdb.set_trace = builtins.input = refuse
    try:
        yield
    finally:
        pdb.set_trace, builtins.input = saved


def headless_pyplot() -> None:
    """PAI draws its report with pyplot: use the non-interactive Agg backend, so a PAI run needs no
    display and opens no window, whatever backend the machine would pick. (nexus draws its own
    plots without pyplot.)"""
    import matplotlib

    matplotlib.use("Agg")


class PAIGrowth:
    """Perforated AI's dendrites. All PAI calls run with the run folder as working directory
    (PAI writes relative to it) and with PAI's chatty console output sent to pai/console.log."""

    def __init__(self, pai_cfg, train_cfg, run_dir: Path, device: str, extra_groups: list[dict]):
        self.cfg = pai_cfg
        self.train_cfg = train_cfg
        self.extra_groups = extra_groups
        self.run_dir = Path(run_dir)
        self.device = device
        self.mode = pai_cfg.mode
        (self.run_dir / PAI_FOLDER).mkdir(parents=True, exist_ok=True)
        self.log_path = self.run_dir / PAI_FOLDER / "console.log"
        self.graphs = PAIGraphs(every_epoch=bool(pai_cfg.graphs_every_epoch))
        headless_pyplot()

    @contextlib.contextmanager
    def _inside_run_dir(self):
        with (open(self.log_path, "a") as log, contextlib.chdir(self.run_dir), contextlib.redirect_stdout(log),
              no_interactive_prompts()):
            yield

    def prepare(self, net: nn.Module) -> nn.Module:
        from perforatedai import globals_perforatedai as GPA
        from perforatedai import utils_perforatedai as UPA

        configure_pai(self.cfg, self.device)
        with self._inside_run_dir():
            net = UPA.perforate_model(net, save_name=PAI_FOLDER, maximizing_score=True)
            GPA.pai_tracker.set_optimizer(OPTIMIZERS[self.train_cfg.optimizer])
        return net.to(self.device)

    def checkpoint_state(self) -> dict:
        """PAI's settings and tracker, pickled together with the network they point into."""
        from perforatedai import globals_perforatedai as GPA

        return {"settings": GPA.pc, "tracker": GPA.pai_tracker}

    def restore(self, state: dict) -> None:
        # PAI's own load_system does not bring back its graph history (its next graph crashes),
        # so a resumed run gets the pickled tracker itself.
        from perforatedai import globals_perforatedai as GPA

        GPA.pc, GPA.pai_tracker = state["settings"], state["tracker"]

    def make_optimizer(self, net: nn.Module) -> torch.optim.Optimizer:
        from perforatedai import globals_perforatedai as GPA

        with self._inside_run_dir():
            optimizer, _ = GPA.pai_tracker.setup_optimizer(net, optimizer_args(net, self.train_cfg,
                                                                               self.extra_groups), {})
        return optimizer

    def after_epoch(self, score: float, net: nn.Module, optimizer, last: bool = False) -> Decision:
        """`last`: the epoch cap's epoch (the run ends after it whatever PAI decides)."""
        from perforatedai import globals_perforatedai as GPA

        dendrites_before = self._dendrites()
        with self._inside_run_dir(), self.graphs.epoch(last):
            # PAI compares scores relative and absolute: give it Spearman on a 0..100 scale.
            net, restructured, complete = GPA.pai_tracker.add_validation_score(100.0 * score, net)
        event = None
        if restructured:
            # A restructure is either new dendrites or PAI reloading an earlier best model;
            # either way the old optimizer points at dead parameters.
            net = net.to(self.device)
            event = "dendrites_added" if self._dendrites() > dendrites_before else "reloaded_best"
            optimizer = self.make_optimizer(net)
        return Decision(net, optimizer, event, bool(complete))

    def _dendrites(self) -> int:
        from perforatedai import globals_perforatedai as GPA

        return int(GPA.pai_tracker.member_vars["num_dendrites_added"])

    def metrics(self, net: nn.Module) -> dict:
        from perforatedai import globals_perforatedai as GPA
        from perforatedai import utils_perforatedai as UPA

        return {
            "pai/mode": str(GPA.pai_tracker.member_vars["mode"]),
            "pai/dendrites": self._dendrites(),
            "pai/params": int(UPA.count_params(net)),
        }

    def finish(self, net: nn.Module) -> nn.Module:
        """The network that was validated, dendrites included.

        Not PAI's prepare_final_model: in perforatedai 3.2.9 its inference wrapper drops the
        output weights of a lone dendrite (`skip_weights` of length 1), so a one-dendrite model
        would be saved and tested as its plain Linear layer."""
        with self._inside_run_dir():
            self.graphs.finish()  # PAI's report for the final state, if the last epoch skipped it
        return net


def reset_pai(forward_function: str, device: str):
    """PAI's global settings from scratch, with what shapes the network and unattended use.

    PAI keeps its settings and tracker in module globals: every run (and every model load) starts
    from new ones, so runs in one process (Hydra multirun) equal runs in separate processes."""
    from perforatedai import globals_perforatedai as GPA

    GPA.pc = GPA.PAIConfig()
    GPA.pai_tracker = []
    pc = GPA.pc
    pc.set_pai_forward_function(FORWARD_FUNCTIONS[forward_function])
    pc.set_device(device)
    pc.set_verbose(False)
    # Unattended: the default capacity test would silently replace the experiment,
    # and unconfirmed settings stop in an interactive prompt or pdb.
    pc.set_testing_dendrite_capacity(False)
    pc.set_configuration_confirmed(True)
    pc.set_unwrapped_modules_confirmed(True)
    pc.set_weight_decay_accepted(True)
    return pc


def configure_pai(pai_cfg, device: str) -> None:
    """PAI's settings for a run: the above plus the switch mode and every knob of `pai_cfg`."""
    pc = reset_pai(pai_cfg.forward_function, device)
    switch_modes = {
        "history": pc.DOING_HISTORY,
        "fixed": pc.DOING_FIXED_SWITCH,
        "every_epoch": pc.DOING_SWITCH_EVERY_TIME,
        "no_switch": pc.DOING_NO_SWITCH,
    }
    pc.set_switch_mode(switch_modes[pai_cfg.mode])
    pc.set_n_epochs_to_switch(int(pai_cfg.n_epochs_to_switch))
    pc.set_history_lookback(int(pai_cfg.history_lookback))
    pc.set_initial_history_after_switches(int(pai_cfg.initial_history_after_switches))
    pc.set_fixed_switch_num(int(pai_cfg.fixed_switch_num))
    pc.set_first_fixed_switch_num(int(pai_cfg.first_fixed_switch_num))
    pc.set_max_dendrites(int(pai_cfg.max_dendrites))
    pc.set_max_dendrite_tries(int(pai_cfg.max_dendrite_tries))
    pc.set_improvement_threshold([float(x) for x in pai_cfg.improvement_threshold])
    pc.set_improvement_threshold_raw([float(x) for x in pai_cfg.improvement_threshold_raw])
    pc.set_candidate_weight_initialization_multiplier(float(pai_cfg.candidate_weight_init_multiplier))
    pc.set_find_best_lr(bool(pai_cfg.find_best_lr))
    pc.set_test_saves(bool(pai_cfg.save_snapshots))


def dendrite_count(net: nn.Module) -> int:
    """Dendrites of a perforated network (0 for a plain one); the adapter has one PAI layer."""
    return sum(int(m.dendrite_modules_added) for m in net.modules() if type(m).__name__ == "PAINeuronModule")


def rebuild_dendritic(layers: nn.Module, dendrites: int, forward_function: str, weights: dict) -> nn.Module:
    """`layers` (plain torch) perforated and grown to `dendrites` dendrites, then given `weights`.

    What PAI's own load_net_from_dict does, without its tracker state: each dendrite is one
    cycle to dendrite mode and one back (simulate_cycles), after the value trackers get the
    stored shape. perforate_model writes a config file to the working directory, so it runs in
    a temporary one; its console output is dropped."""
    import io
    import tempfile

    from perforatedai import utils_perforatedai as UPA

    reset_pai(forward_function, "cpu")
    with (tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp), contextlib.redirect_stdout(io.StringIO()),
          no_interactive_prompts()):
        net = UPA.perforate_model(layers, save_name="pai", maximizing_score=True)
        del net.tracker_string  # PAI's training history, not part of the network
        for module in UPA.get_pai_modules(net, 0):
            prefix = UPA.get_module_base_name(module) + ".dendrite_module."
            for tracker in module.dendrite_module.dendrite_values:
                tracker.setup_arrays(weights[prefix + "dendrite_values.0.dendrite_storage_shape"].tolist())
            UPA.simulate_cycles(module, 2 * dendrites, doing_pai=True)
    net.load_state_dict(weights, strict=True)
    return net.eval()
