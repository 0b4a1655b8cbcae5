"""Notebook cell "positional encoding": add sin/cos position codes to (2, 5, 312) word embeddings.

zoo: `positional-encoding` (d_model 312, max_len 5); in eval mode its dropout is off, so the
output minus the input is the code table itself.
"""

import math

import torch

import zoo

torch.manual_seed(0)
encoding = zoo.create("positional-encoding", d_model=312, dropout=0.1, max_len=5)
words = torch.randn(2, 5, 312)
out = encoding(words)
print(f"word embeddings shape: {tuple(words.shape)}")
print(f"output shape:          {tuple(out.shape)}")
table = encoding.eval()(words) - words
position, i = 3, 2  # dims 2i and 2i+1: sin and cos of position / 10000^(2i/d)
angle = position / 10000 ** (2 * i / 312)
print(f"position {position}, dims {2 * i},{2 * i + 1}: {table[0, position, 2 * i].item():.4f} "
      f"{table[0, position, 2 * i + 1].item():.4f}  (sin, cos: {math.sin(angle):.4f} {math.cos(angle):.4f})")
print(f"training mode drops ~10%: {(out == 0).float().mean().item():.3f} of the outputs are zero")
