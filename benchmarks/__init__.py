"""NEXUS's benchmarks, beside their results (cpu/, gpu/, sweep36/); not part of the installed package.

    python -m benchmarks.bench            # CPU: cache, epochs, memory, the 36-run sweep
    python -m benchmarks.bench_finetune   # GPU: full fine-tuning throughput against sentence-transformers
    python -m benchmarks.report FILE      # the Markdown table of a saved result

Run them from the repository root.
"""
