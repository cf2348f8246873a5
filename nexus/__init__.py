"""NEXUS: does a Perforated AI dendrite help a frozen all-MiniLM-L6-v2 on STS-B? Measure it.

A saved run's `model/` names its adapter class `nexus.adapter.Adapter`; sentence-transformers
imports it from there. Nothing heavy is imported here, so `nexus-sweep` and `nexus-compare`
start fast.
"""


def __getattr__(name: str):
    if name == "Adapter":
        from nexus.adapter import Adapter

        return Adapter
    raise AttributeError(f"module 'nexus' has no attribute {name!r}")
