"""Notebook cell "FeedForward": Linear(312, 1248) -> ReLU -> Linear(1248, 312) -> ReLU -> LayerNorm.

zoo: the `feed-forward` layer from the registry, with the notebook's defaults (dim 312, scale 4).
"""

import torch

import zoo

torch.manual_seed(0)
feed_forward = zoo.create("feed-forward")
x = torch.randn(16, 50, 312)  # batch 16, 50 positions, 312 features
y = feed_forward(x)
print(f"input shape:  {tuple(x.shape)}")
print(f"output shape: {tuple(y.shape)}")
print(f"parameters:   {sum(p.numel() for p in feed_forward.parameters()):,}")
print(f"each position normalised: mean {y.mean(-1).abs().max().item():.1e} (max |.|), "
      f"std {y.std(-1, correction=0).mean().item():.4f}")
