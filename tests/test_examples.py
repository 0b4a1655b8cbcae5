"""Every script in docs/examples runs (tiny sizes) and prints or draws what the notebook's cell did."""

import re
import runpy

import pytest
from conftest import ROOT, assert_png

EXAMPLES = ROOT / "docs" / "examples"

# script -> (lines its output must contain, as regular expressions; PNGs it writes with their size)
EXPECTED = {
    "mnist_mlp.py": ([r"accuracy on the first 1000 test images: 0\.[3-9]\d+", r"run folder: runs/mnist-mlp"],
                     {"runs/mnist-mlp/loss.png": (450, 1200)}),
    "feed_forward.py": ([r"output shape: \(16, 50, 312\)", r"parameters:   780,936",
                         r"each position normalised: mean \d\.\de-0[6-9] \(max \|\.\|\), std 0\.99"], {}),
    "simple_net.py": ([r"output shape: \(2, 5\)", r"equals x @ W\.T \+ b: True"], {}),
    "batch_size_sweep.py": ([r"batch_size=1 +final train loss", r"batch_size=1000 +final train loss"],
                            {"runs/simple-net-batch-sweep/sweep.png": (450, 700)}),
    "layernorm_stats.py": ([r"LayerNorm output mean of per-feature means [+-]0\.0000 "], {"layernorm_stats.png": (500, 1200)}),
    "split_heads.py": ([r"\(2, 3, 8\) with 2 heads -> \(2, 2, 3, 4\); same as the two rearranges: True",
                        r"\(4, 10, 312\) with 8 heads -> \(4, 8, 10, 39\); same as the two rearranges: True",
                        r"features 39\.\.77: True", r"merge-heads undoes it: True"],
                       {"split_heads_small.png": (500, 1800), "split_heads_312.png": (500, 1800)}),
    "linear.py": ([r"output shape: \(8, 5\)", r"equals x @ W\.T \+ b: True"], {}),
    "attention_mask.py": ([r"probabilities shape \(2, 3, 4, 4\)", r"probability on masked keys: 0\.0$",
                           r"queries with no visible key: 6, their rows sum to 0\.0$"], {}),
    "positional_encoding.py": ([r"position 3, dims 4,5: (\S+) (\S+)  \(sin, cos: \1 \2\)",
                                r"training mode drops ~10%: 0\.(0[5-9]|1[0-5])\d of the outputs are zero"], {}),
    "encoder.py": ([r"output shape: +\(2, 5, 312\)", r"max \|difference\| 0\.0$"], {}),
    "notebook_differences.py": ([r"batch  100: notebook's figure (\S+)   mean loss \1",
                                 r"batch 1000: notebook's figure 0\.00\d+   mean loss 0\.[1-3]",
                                 r"dropout built in forward\(\): 0\.(0[89]|1[01])", r"zoo's dropout layer: +0\.0000",
                                 r"notebook's \(B, 1, L, 1\) mask: [1-9]", r"zoo's \(B, 1, 1, L\) key mask : 0\.0000",
                                 r"share weights: False"], {}),
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script, tmp_path, monkeypatch, capsys):
    """Each script as ``python script.py`` runs it (in this process: no interpreter start-up)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZOO_EXAMPLES_TINY", "1")
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    output = capsys.readouterr().out
    patterns, pngs = EXPECTED[script]
    for pattern in patterns:
        assert re.search(pattern, output, re.MULTILINE), f"{pattern!r} not in:\n{output}"
    for name, size in pngs.items():
        assert_png(tmp_path / name, size)
