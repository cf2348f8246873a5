"""NEXUS: does a Perforated AI dendrite help a frozen all-MiniLM-L6-v2 on STS-B? Measure it.

Nothing heavy is imported here, so `nexus-sweep` and `nexus-compare` start fast. A saved
model folder loads with `nexus.model.load_model` (or plain sentence-transformers for baselines).
"""
