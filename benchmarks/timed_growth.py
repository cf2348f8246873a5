"""The growth policy as the benchmark uses it: made by nexus's factory, its decision timed.

The only module here that names nexus's growth API (nexus.growth).
"""

from __future__ import annotations

import time

from nexus.growth import make_growth

__all__ = ["TimedGrowth", "growth_metrics", "make_growth"]


def growth_metrics(growth, net) -> dict:
    """The policy's `pai/...` metrics of `net` (dendrites, params)."""
    return growth.metrics(net)


class TimedGrowth:
    """Wraps a growth policy for `nexus.train.fit`: `after_epoch` (PAI's decision) is timed into
    `decide_s`, one entry per call; every other attribute is the wrapped policy's own."""

    def __init__(self, growth):
        self.inner = growth
        self.decide_s: list[float] = []

    def after_epoch(self, score, net, optimizer, last: bool = False):
        started = time.perf_counter()
        try:
            return self.inner.after_epoch(score, net, optimizer, last)
        finally:
            self.decide_s.append(time.perf_counter() - started)

    def __getattr__(self, name: str):
        # Only reached for names TimedGrowth lacks: prepare, make_optimizer, metrics, finish, ...
        if name == "inner":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)
