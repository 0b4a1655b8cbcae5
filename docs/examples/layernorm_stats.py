"""Notebook cell "LayerNorm statistics": the per-feature mean and standard deviation of a batch before
the feed-forward block and after its LayerNorm, plotted feature by feature.

zoo: `zoo.activations.capture` hooks the named module; `zoo.plots.feature_stats` draws the
figure (layernorm_stats.png). The CLI does the same: zoo inspect feed-forward --module layer_norm
--input-shape 4,10,312.
"""

import torch

import zoo
from zoo import plots
from zoo.use.inspect import capture, find_module

torch.manual_seed(0)
block = zoo.create("feed-forward")  # embedding dim 312
x = torch.randn(4, 10, 312)  # batch 4, 10 positions: the notebook's input
print(f"input shape {tuple(x.shape)}, output shape {tuple(block(x).shape)}")
block_in = capture(block, block, x)["input"]
name, layer_norm = find_module(block, "layer_norm")
norm = capture(block, layer_norm, x)
series = {"block input": block_in, "LayerNorm input": norm["input"], "LayerNorm output": norm["output"]}
for label, stats in series.items():
    print(f"{label:16s} mean of per-feature means {stats.mean.mean().item():+.4f}  "
          f"per-feature std {stats.std.min().item():.4f}..{stats.std.max().item():.4f}")
plots.feature_stats("layernorm_stats.png", {k: (s.mean.tolist(), s.std.tolist()) for k, s in series.items()},
                    "feed-forward")
print("wrote layernorm_stats.png")
