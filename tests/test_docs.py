"""The documentation: every relative link resolves (file, and heading for `#anchor`), and every NEXUS
command in a ```bash block parses: launch.py's overrides compose and pass the config check, the
console tools accept their arguments. Nothing runs; each failure names its file:line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import REPO

DOCS = [REPO / "README.md", REPO / "RESULTS.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
CODE_SPAN = re.compile(r"(`+).*?\1")
PLACEHOLDER = re.compile(r"<[^<>]+>")  # <sweep id>: a value the reader fills in
FILLED = "PLACEHOLDER"
SHELL_VALUES = {"$(nproc)": "2"}  # what a shell would put in; any other `$...` is a placeholder too
OPERATORS = {"&&", "||", ";", "|", "&", "(", ")"}
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

PROGRAMS = {  # how a command starts -> the tool whose arguments follow
    ("python", "launch.py"): "launch",
    ("nexus-sweep",): "sweep",
    ("python", "-m", "nexus.sweep"): "sweep",
    ("nexus-compare",): "compare",
    ("python", "-m", "nexus.compare"): "compare",
    ("nexus-publish",): "publish",
    ("python", "-m", "nexus.publish"): "publish",
}


def where(path: Path, line: int) -> str:
    return f"{path.relative_to(REPO)}:{line}"


def lines_outside_code(path: Path):
    """(line number, text) of the lines that are not inside a fenced block."""
    fenced = False
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if FENCE.match(text):
            fenced = not fenced
        elif not fenced:
            yield number, text


def slug(heading: str) -> str:
    """GitHub's anchor: markup gone, lowercase, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    for _, text in lines_outside_code(path):
        heading = HEADING.match(text)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            seen.setdefault(f"{base}-{count}" if count else base, 1)
    return set(seen)


def links():
    for path in DOCS:
        for number, text in lines_outside_code(path):
            for target in LINK.findall(CODE_SPAN.sub("", text)):
                if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ... are not checked
                    yield pytest.param(where(path, number), path, target, id=f"{where(path, number)} {target}")


@pytest.mark.parametrize("at, source, target", links())
def test_relative_link_resolves(at, source, target):
    file, _, anchor = target.partition("#")
    linked = (source.parent / file).resolve() if file else source
    if not linked.exists():
        pytest.fail(f"{at}: {target}: no file {linked}", pytrace=False)
    if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
        pytest.fail(f"{at}: {target}: no heading #{anchor} in {linked.relative_to(REPO)}", pytrace=False)


def bash_lines(path: Path):
    """(line number, logical line) in ```bash blocks, continuation lines joined."""
    fenced, language, pending, start = False, "", "", 0
    for number, text in enumerate(path.read_text().splitlines(), 1):
        fence = FENCE.match(text)
        if fence:
            fenced, language = not fenced, fence.group(2)
            continue
        if not fenced or language not in ("bash", "sh", "shell"):
            continue
        if not pending:
            start = number
        if text.rstrip().endswith("\\"):
            pending += text.rstrip()[:-1] + " "
            continue
        yield start, pending + text
        pending = ""


def commands_in(line: str):
    """The NEXUS commands of one shell line (comments dropped): (tool, arguments), placeholders as FILLED."""
    for shell, value in SHELL_VALUES.items():
        line = line.replace(shell, value)
    line = PLACEHOLDER.sub(FILLED, line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens, segment = [], []
    for token in [*lexer, ";"]:
        if token in OPERATORS:
            tokens.append(segment)
            segment = []
        else:
            segment.append(token)
    for segment in tokens:
        while segment and ENV_ASSIGNMENT.match(segment[0]):
            segment = segment[1:]
        for start, tool in PROGRAMS.items():
            if tuple(segment[:len(start)]) == start:
                yield tool, segment[len(start):]


def commands():
    for path in DOCS:
        for number, line in bash_lines(path):
            for tool, args in commands_in(line):
                if "..." in args:  # `python launch.py -m ... hydra/launcher=joblib`: a shape, not a command
                    continue
                filled = any(FILLED in a or "$" in a for a in args)
                if tool == "launch" and filled:  # its values matter; the tools' parsers only read option names
                    continue
                args = [re.sub(r"\$\{?\w+\}?", FILLED, a) for a in args]
                yield pytest.param(where(path, number), tool, args, id=where(path, number))


def launch_overrides(args: list[str]) -> list[list[str]]:
    """The override lists to compose for `python launch.py ARGS`: a multirun's sweeps give each of
    their values once (the others at their first value); Hydra's own settings are left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from nexus.compose import MULTIRUN_FLAGS
    from nexus.config import hydra_spelling

    kept = [a for a in hydra_spelling(args) if a not in MULTIRUN_FLAGS
            and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    parsed = OverridesParser.create().parse_overrides(kept)
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
              for o in parsed]
    keys = [o.get_key_element() for o in parsed]
    lists = [[f"{k}={v[0]}" for k, v in zip(keys, values)]]
    for i, options in enumerate(values):
        for option in options[1:]:
            lists.append([*lists[0][:i], f"{keys[i]}={option}", *lists[0][i + 1:]])
    return lists


def parse(tool: str, args: list[str]) -> None:
    if tool == "launch":
        from nexus.compose import compose
        from nexus.config import check

        for overrides in launch_overrides(args):
            check(compose(overrides))  # the values launch.py would refuse (no files, no folders)
    elif tool == "sweep":
        from nexus.sweep.cli import parse_args, parse_check_args

        parse_check_args(args[1:]) if args[:1] == ["check"] else parse_args(args)
    elif tool == "compare":
        from nexus.compare.cli import parse_args

        parse_args(args)
    else:
        from nexus.publish import parse_args

        parse_args(args)


def parse_error(tool: str, args: list[str], capsys) -> str | None:
    """None when the command parses, else why, in one line (argparse's, Hydra's or NEXUS's words)."""
    try:
        parse(tool, args)
    except SystemExit as exit_:
        if exit_.code == 0 and ("--help" in args or "-h" in args):
            return None
        said = capsys.readouterr().err.strip().splitlines()
        return said[-1] if said else f"exit {exit_.code}"
    except Exception as err:  # noqa: BLE001  a UserError or Hydra's composition error
        return (str(err).strip().splitlines() or [type(err).__name__])[0]
    return None


@pytest.mark.parametrize("at, tool, args", commands())
def test_documented_command_parses(capsys, at, tool, args):
    error = parse_error(tool, args, capsys)
    if error:
        pytest.fail(f"{at}: {' '.join(args)}: {error}", pytrace=False)


def test_the_checks_see_the_documentation():
    """The readers above find what is there: the README's own links and its commands."""
    readme = [p for p in links() if p.values[1] == REPO / "README.md"]
    found = {(tool, " ".join(args)) for _, tool, args in (p.values for p in commands())}
    assert len(readme) >= 10, f"README.md: only {len(readme)} relative links found"
    assert ("launch", "+experiment=dendritic") in found, "README.md: its first command was not found"
    assert {tool for tool, _ in found} == {"launch", "sweep", "compare", "publish"}, sorted(found)
