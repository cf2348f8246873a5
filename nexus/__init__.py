"""NEXUS: does a Perforated AI dendrite help a frozen all-MiniLM-L6-v2 on STS-B? Measure it.

Importing the package registers the adapter class, so `SentenceTransformer(run_dir / "model")`
reloads a saved model (dendrites included) after `import nexus`.
"""

from nexus.adapter import Adapter

__all__ = ["Adapter"]
