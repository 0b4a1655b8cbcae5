"""Notebook cell "Encoder": token embedding -> positional encoding -> attention -> feed-forward, on
(2, 5) random tokens with vocabulary 1024 and width 312.

zoo: `transformer-encoder` from the registry. Padding (token 0) is masked as keys, so what
stands in padded positions never changes the output at real ones.
"""

import torch

import zoo

torch.manual_seed(0)
encoder = zoo.create("transformer-encoder", vocab_size=1024, max_len=5, dim=312).eval()
tokens = torch.randint(1, 1024, (2, 5))
tokens[1, 3:] = 0  # the second sequence has 3 real tokens
with torch.no_grad():
    out = encoder(tokens)
    other = tokens.clone()
    other[1, 3:] = 7  # something else in the padded positions, still marked as padding by the mask
    changed = encoder(other, mask=tokens != 0)
print(f"token inputs shape: {tuple(tokens.shape)}")
print(f"output shape:       {tuple(out.shape)}")
print(f"parameters:         {sum(p.numel() for p in encoder.parameters()):,}")
print(f"real positions after changing padded tokens: max |difference| {(out[1, :3] - changed[1, :3]).abs().max().item()}")
