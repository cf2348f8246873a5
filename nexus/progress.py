"""Progress of a long read, on stderr so that stdout stays the report."""

from __future__ import annotations

import sys
from typing import Iterator, Sequence, TypeVar

T = TypeVar("T")


def progress(items: Sequence[T], what: str) -> Iterator[T]:
    """`items`, saying `what: k/N` as each is done: a live bar on a terminal, a plain line per item
    on a pipe (a log file or CI keeps every line, where a bar's carriage returns would pile up)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, desc=what, file=sys.stderr, leave=False)
        return
    for k, item in enumerate(items, 1):
        yield item
        print(f"{what}: {k}/{len(items)}", file=sys.stderr, flush=True)
