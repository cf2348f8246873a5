"""Helpers of the model-folder tests (test_model_folder, test_adapters): a run's saved predictions,
a model's own cosines, a folder copy to tamper with, and a pickle that runs code."""

import os
import shutil

import numpy as np
import torch


def saved_predictions(run_dir):
    return np.genfromtxt(run_dir / "predictions/test.csv", delimiter=",", names=True)["pred"]


def cosines(model, pairs):
    a = model.encode(pairs.sentences1, convert_to_tensor=True)
    b = model.encode(pairs.sentences2, convert_to_tensor=True)
    return torch.cosine_similarity(a, b).numpy()


def copy_folder(src, dst):
    """A copy to tamper with: the large backbone weights hard-linked (only read), the rest copied."""
    def copy(s, d):
        return os.link(s, d) if os.path.getsize(s) > 1 << 20 else shutil.copy2(s, d)

    shutil.copytree(src, dst, copy_function=copy)
    return dst


class RunsCode:
    """Unpickling this writes the marker file: what a malicious adapter file could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (type(self.marker).write_text, (self.marker, "code ran"))
