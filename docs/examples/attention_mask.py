"""Notebook cell "attention mask": softmax(q k^T / sqrt(d)) under a (2, 3, 4, 4) mask, 1 = attend.

zoo: `multi-head-attention` (3 heads of 5 dims) gives the probabilities its forward pass applies.
The notebook adds -1e5 to masked scores, so a query with *no* visible key gets a uniform 0.25
over masked keys; zoo gives such a query a row of zeros (and a zero attention output).
"""

import torch

import zoo

torch.manual_seed(0)
attention = zoo.create("multi-head-attention", embed_dim=15, num_heads=3, dropout=0.0).eval()
x = torch.randn(2, 4, 15)  # batch 2, 4 positions; 3 heads x 5 dims after the projections
visible = [[3, 3, 3, 0], [2, 2, 0, 0], [1, 0, 0, 0]]  # sample 0: keys visible per head and query
mask = torch.ones(2, 3, 4, 4)
for head, counts in enumerate(visible):
    for query, count in enumerate(counts):
        mask[0, head, query, count:] = 0
probs = attention.probabilities(x, mask=mask)
print(f"mask shape {tuple(mask.shape)}, probabilities shape {tuple(probs.shape)}")
print("sample 0, head 1:")
for row in probs[0, 1].tolist():
    print("  " + "  ".join(f"{p:.4f}" for p in row))
masked_total = probs[mask == 0].sum().item()
empty = (mask.sum(-1) == 0).sum().item()
print(f"probability on masked keys: {masked_total}")
print(f"queries with no visible key: {empty}, their rows sum to {probs[mask.sum(-1) == 0].sum().item()}")
