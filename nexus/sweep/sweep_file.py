"""The sweep file: loading and schema, the command line `wandb agent` builds from it, and the
checks that refuse a sweep before any run starts."""

from __future__ import annotations

import contextlib
import copy
import io
import platform
import re
import sys
import warnings
from pathlib import Path

import yaml

from nexus.errors import UserError, one_line

# What wandb's agent substitutes for ${interpreter} (wandb/wandb_agent.py, Agent._command_run).
AGENT_INTERPRETER = "python"


def import_sweeps():
    """The `sweeps` package; its pydantic models warn on import, which would break one-line errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import sweeps
    return sweeps


def schema_problem(config) -> str | None:
    """The first violation of the sweep schema (what `wandb sweep` checks), naming its key."""
    import jsonschema

    sweeps = import_sweeps()
    from sweeps.config.schema import validator

    if not isinstance(config, dict):
        return "a sweep file is a YAML mapping (method, metric, parameters, ...)"
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:  # jsonschema knows where; the sweeps summary below only says what
        return f"{'.'.join(map(str, error.absolute_path)) or 'top level'}: {one_line(error.message)}"
    try:
        violations = sweeps.schema_violations_from_proposed_config(config)
    except ValueError as err:  # a parameter that is not a mapping
        return one_line(err)
    return one_line(violations[0]) if violations else None


def read_sweep_yaml(path: Path):
    """The sweep file as `wandb sweep` reads it: yaml.safe_load, YAML 1.1."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as err:
        raise UserError(f"cannot read sweep file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {one_line(err)}") from None


# Written as a number, but not one to YAML 1.1, whose floats need a decimal point and a signed
# exponent: `wandb sweep` keeps 1e-4 as the string '1e-4', which the agent's runs then carry in
# W&B's config while Hydra reads the command line's 1e-4 as 0.0001. A quoted number is the same.
NUMBER_LIKE = re.compile(r"[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def yaml11_number(text: str) -> str:
    """`text` as a YAML 1.1 number: 1e-4 -> 1.0e-4, 3E5 -> 3.0e+5."""
    mantissa, e, exponent = text.lower().partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    if e and exponent[0] not in "+-":
        exponent = "+" + exponent
    return mantissa + e + exponent


def number_strings(parameters, where: str = "parameters") -> list[str]:
    """Each string that looks like a number in the parameters' values (value, values, min, max,
    a distribution's mu, sigma, q, ...; nested parameters too), with the fix, a line each."""
    if not isinstance(parameters, dict):
        return []  # the schema check says what is wrong with it
    problems = []
    for key, spec in parameters.items():
        for field, value in spec.items() if isinstance(spec, dict) else []:
            if field == "parameters":
                problems += number_strings(value, f"{where}.{key}.parameters")
                continue
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                if isinstance(item, str) and NUMBER_LIKE.fullmatch(item):
                    place = f"{where}.{key}.{field}" + ("" if i is None else f"[{i}]")
                    problems.append(f"{place}: {item!r} is a string to YAML 1.1 (what `wandb sweep` reads), "
                                    f"not a number; write {yaml11_number(item)}")
    return problems


def load_sweep_file(path: Path) -> dict:
    """The sweep file as `wandb sweep` reads it (YAML 1.1), schema-checked, with no number that
    YAML 1.1 reads as a string (see NUMBER_LIKE)."""
    config = read_sweep_yaml(path)
    problems = number_strings(config.get("parameters") if isinstance(config, dict) else None)
    if problems:
        more = f" (and {len(problems) - 1} more: `nexus-sweep check {path}` lists them)" if len(problems) > 1 else ""
        raise UserError(f"{path}: {problems[0]}{more}")
    problem = schema_problem(config)
    if problem:
        raise UserError(f"{path}: {problem}")
    if uses_program(config) and not config.get("program"):
        raise UserError(f"{path}: program: required by ${{program}} in the command")
    return config


def uses_program(config: dict) -> bool:
    """Whether the command runs the file's `program` (the agent's default command does)."""
    return "${program}" in map(str, config.get("command") or ["${program}"])


def agent_command(config: dict, params: dict, interpreter: str = AGENT_INTERPRETER,
                  args_json_file: str = "") -> list[str]:
    """The argv `wandb agent` runs for one parameter set (`params`: {"key": {"value": v}}).

    wandb builds the macro values with create_sweep_command_args, fills ${envvar:...} with
    create_sweep_command, then substitutes macros in a loop inline in Agent._command_run: the
    loop and the four values the agent adds are copied from there (wandb 0.31), since wandb has
    no function for them.
    """
    from wandb.sdk.launch.sweeps import utils as sweep_utils

    # create_sweep_command edits the list in place: hand it a copy.
    command = sweep_utils.create_sweep_command(copy.deepcopy(config.get("command")) or None)
    sweep_vars = sweep_utils.create_sweep_command_args({"args": params})
    sweep_vars["interpreter"] = [interpreter]
    sweep_vars["program"] = [config.get("program")]
    sweep_vars["args_json_file"] = [args_json_file]
    if platform.system() != "Windows":
        sweep_vars["env"] = ["/usr/bin/env"]
    argv = []
    for c in command:
        c = str(c)
        if c.startswith("${") and c.endswith("}"):
            argv += sweep_vars.get(c[2:-1]) or []
        else:
            argv += [c]
    return argv


def hydra_string(text: str) -> str:
    """`text` as a Hydra override value that stays a string whatever it looks like (quoted)."""
    return "'" + text.replace("'", "\\'") + "'"


def program_args(argv: list[str], config: dict) -> list[str] | None:
    """The arguments a Hydra program receives: what follows the program in the command."""
    program = config.get("program")
    return argv[argv.index(program) + 1:] if program in argv else None


def nexus_program(config: dict) -> Path | None:
    """The sweep's program when it is NEXUS's launch.py (conf/ beside it) and the command runs it."""
    program = config.get("program")
    if Path(program or "").name != "launch.py" or program_args(agent_command(config, {}), config) is None:
        return None
    return Path(program) if (Path(program).resolve().parent / "conf" / "config.yaml").is_file() else None


# ---------------------------------------------------------------------------------------------
# Checks before any run starts
# ---------------------------------------------------------------------------------------------

def covering_sets(config: dict) -> list[dict]:
    """A few parameter sets that between them use every listed value of every parameter: the
    engine's first pick with the `values` lists walked in step (each one a point of a grid)."""
    first = import_sweeps().next_run(config, []).config
    lists = {key: p["values"] for key, p in config["parameters"].items() if p.get("values")}
    steps = max((len(values) for values in lists.values()), default=1)
    return [{**first, **{key: {"value": values[i % len(values)]} for key, values in lists.items()}}
            for i in range(steps)]


def grid_size(config: dict) -> int:
    """The number of runs of a grid sweep: W&B's own engine proposes them all, then None."""
    import_sweeps()
    from sweeps.grid_search import grid_search_next_runs

    return len(grid_search_next_runs([], config, n=sys.maxsize)) - 1


def check_parameter_values(config: dict, fixed_args: list[str]) -> None:
    """YAML 1.1 turns off/on/yes/no into booleans and null reaches the command as 'None':
    refuse both where the config does not hold a boolean (a `pai` option, a number, a name)."""
    from omegaconf import OmegaConf

    from nexus.compose import compose

    odd = [(key, value) for key, p in config["parameters"].items()
           for value in ([p["value"]] if "value" in p else p.get("values", []))
           if value is None or isinstance(value, bool)]
    if not odd:
        return
    try:
        cfg = compose(fixed_args, with_hydra=True)
    except Exception:  # noqa: BLE001  the fixed arguments themselves are bad: preflight says how
        return
    missing = object()
    for key, value in odd:
        if value is None:
            raise UserError(f"parameters.{key}: null reaches the command line as the string 'None'; "
                            "give a value")
        current = OmegaConf.select(cfg, key, default=missing)
        if key in cfg.hydra.runtime.choices or (current is not missing and not isinstance(current, bool)):
            raise UserError(f"parameters.{key}: {value} is a YAML boolean (YAML 1.1 reads off/on/yes/no "
                            "as false/true), not a value for it; quote the value, e.g. 'off'")


def check_sweep(config: dict, extra_args: list[str], folder: Path) -> None:
    """Refuse a sweep whose runs launch.py would refuse, before any of them starts."""
    program = config.get("program")
    if uses_program(config) and not Path(program).is_file():
        raise UserError(f"program: {program} not found in {Path.cwd()} (run from the folder `wandb agent` "
                        "would run in: the repository root)")
    if nexus_program(config) is None:
        return  # not NEXUS's launch.py: its arguments are its own business
    fixed = program_args(agent_command(config, {}), config)
    jobs = [program_args(agent_command(config, params), config) + extra_args for params in covering_sets(config)]
    if any(arg.startswith("-") for args in jobs for arg in args):
        raise UserError("command: launch.py takes Hydra overrides (key=value): use ${args_no_hyphens}, "
                        "not ${args}")
    check_parameter_values(config, fixed + extra_args)
    run_dir = hydra_string(str(folder / "runs" / "check"))
    # transformers, imported by preflight, prints a line when WANDB_MODE=offline: not the sweep's output.
    with contextlib.redirect_stdout(io.StringIO()):
        from nexus.preflight import preflight

        for args in jobs:
            preflight([*args, f"hydra.run.dir={run_dir}"])
