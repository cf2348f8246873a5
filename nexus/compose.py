"""Hydra's view of conf/: where it is, and one config composed from overrides, as launch.py would."""

from __future__ import annotations

import contextlib
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
MULTIRUN_FLAGS = ("-m", "--multirun")


@contextlib.contextmanager
def hydra_context():
    """Hydra initialised on conf/ for the block (and cleared on both sides: it is global state)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            yield
    finally:
        GlobalHydra.instance().clear()


def compose(overrides: list[str] = (), with_hydra: bool = False):
    """The config `python launch.py OVERRIDES` runs (with Hydra's own keys when `with_hydra`)."""
    from hydra import compose as hydra_compose

    with hydra_context():
        return hydra_compose(config_name="config", overrides=list(overrides), return_hydra_config=with_hydra)


def default_home() -> Path:
    """$NEXUS_HOME as conf/config.yaml defines it (paths.root), for programs that run no job."""
    return Path(compose().paths.root).expanduser()
