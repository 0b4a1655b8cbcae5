"""multi-head-attention forward + backward against the notebook's formula, with a padding mask.

Batch 32, length 80, dim 312, 6 heads, keys past a random length per sequence masked, gradients on.
The headline compares the formula the issue names (matmul, additive mask, softmax, matmul) with
zoo's module at dropout 0; a second line has both at dropout 0.1 on the probabilities, as the
notebook's Attention class always runs. The modules share weights and agree in eval mode (checked
before timing). Rounds alternate between the two; the best of --repeat rounds counts.

    python benchmarks/attention.py [--iterations 20] [--repeat 5]

Last line: ``notebook/zoo: X.XX``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

import zoo

BATCH, LENGTH, DIM, HEADS = 32, 80, 312, 6


class NotebookAttention(nn.Module):
    """The notebook's formula: projections, matmul, additive mask, softmax, dropout, matmul."""

    def __init__(self, reference: nn.Module, dropout: float):
        super().__init__()
        self.query_proj, self.key_proj = reference.query_proj, reference.key_proj
        self.value_proj, self.out_proj = reference.value_proj, reference.out_proj
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, _ = x.shape
        heads = lambda t: t.view(b, length, HEADS, DIM // HEADS).transpose(1, 2)  # noqa: E731
        q, k, v = heads(self.query_proj(x)), heads(self.key_proj(x)), heads(self.value_proj(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(DIM // HEADS)
        scores = scores + (1 - mask) * -1e9
        probs = self.dropout(torch.softmax(scores, dim=-1))
        return self.out_proj((probs @ v).transpose(1, 2).reshape(b, length, DIM))


def step(module: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    module(x, mask=mask).sum().backward()


def compare(dropout: float, x: torch.Tensor, mask: torch.Tensor, iterations: int, repeat: int) -> dict:
    torch.manual_seed(0)
    ours = zoo.create("multi-head-attention", embed_dim=DIM, num_heads=HEADS, dropout=dropout)
    theirs = NotebookAttention(ours, dropout)
    ours.eval(), theirs.eval()
    difference = (ours(x, mask=mask) - theirs(x, mask=mask)).abs().max().item()
    assert difference < 1e-4, f"the two implementations disagree by {difference}"
    ours.train(), theirs.train()
    best = {"zoo": math.inf, "notebook": math.inf}
    for round_ in range(repeat + 1):
        for name, module in (("zoo", ours), ("notebook", theirs)):
            started = time.perf_counter()
            for _ in range(iterations):
                step(module, x, mask)
            if round_:  # round 0 warms up
                best[name] = min(best[name], (time.perf_counter() - started) / iterations)
    print(f"dropout {dropout}: zoo {best['zoo'] * 1000:.2f} ms, notebook {best['notebook'] * 1000:.2f} ms "
          f"per forward+backward ({best['notebook'] / best['zoo']:.2f}x); max |difference| in eval {difference:.1e}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20, help="forward+backward passes per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best counts")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(BATCH, LENGTH, DIM)
    lengths = torch.randint(LENGTH // 2, LENGTH + 1, (BATCH, 1))
    mask = (torch.arange(LENGTH) < lengths).float()[:, None, None, :]
    print(f"batch {BATCH}, length {LENGTH}, dim {DIM}, {HEADS} heads, padding mask; torch {torch.__version__}")
    compare(0.1, x, mask, args.iterations, args.repeat)
    best = compare(0.0, x, mask, args.iterations, args.repeat)
    print(f"notebook/zoo: {best['notebook'] / best['zoo']:.2f}")


if __name__ == "__main__":
    main()
