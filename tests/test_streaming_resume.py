"""Mid-epoch resume on tar shards: a streamed build killed with kill -9 (every process) resumes at its
checkpoint's step and ends on the uninterrupted build's weights, under 1 and 2 processes (its own file:
the heaviest tests of the streaming data spread over the suite's workers)."""

import json
import subprocess
import time

import numpy as np
import pytest
import torch
from conftest import BIN, CHECKPOINT, write_recipe
from PIL import Image
from safetensors.torch import load_file
from test_streaming import STREAMED

import zoo
from zoo.testing import kill_tree


def checkpointed(out) -> tuple[int, int] | None:
    """(epochs done, step) of a run folder's last whole checkpoint, if any."""
    try:
        state = json.loads((out / CHECKPOINT).read_text())
    except (OSError, ValueError):
        return None
    position = dict(dict(state["skeleton"]["$dict"])["position"]["$dict"])
    return position["epoch"], position["step"]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_run_killed_mid_epoch_resumes_there_to_the_uninterrupted_weights(tmp_path, mnist_shards, processes):
    """kill -9 (every process) once a checkpoint inside epoch 2 or 3 is written (at step 4 or 8 of 12 //
    processes, 33% or 67% of the epoch), resume: it continues there, not at 0%, to the same weights."""
    recipe = write_recipe(tmp_path, STREAMED, root=mnist_shards)
    nproc = ["--nproc", "2"] if processes == 2 else []
    command = [str(BIN / "zoo"), "build", str(recipe), "--no-progress", *nproc]
    straight = subprocess.run([*command, "--out", str(tmp_path / "straight")], capture_output=True, text=True,
                              timeout=600)
    assert straight.returncode == 0, straight.stderr
    assert "waiting for data)" in straight.stdout and "the loop waited for data" in straight.stdout
    if processes == 1:  # the weights know their input and classes: predict takes an image file
        Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "blank.png")
        model = zoo.load(str(tmp_path / "straight" / "weights.safetensors"))
        top = zoo.predict(model, str(tmp_path / "blank.png"), top_k=10)[0]["top"]
        assert sorted(t["label"] for t in top) == [str(i) for i in range(10)]
    out = tmp_path / "run"
    process = subprocess.Popen([*command, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not ((where := checkpointed(out)) and where[0] >= 1 and where[1] > 0):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    kill_tree(process.pid)
    process.wait(timeout=60)
    epochs, step = checkpointed(out)
    assert step in (4, 8) and not (out / "weights.safetensors").exists()
    resumed = subprocess.run([*command, "--out", str(out), "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming streamed at epoch {epochs + 1}, batch {step}" in resumed.stdout
    a = load_file(str(tmp_path / "straight" / "weights.safetensors"))
    b = load_file(str(out / "weights.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
