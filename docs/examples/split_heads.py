"""Notebook cells "einops split": (batch, length, heads*d) -> (batch, heads, length, d), shown on a
(2, 3, 8) tensor with 2 heads and on (4, 10, 312) with 8 heads, with heat maps of one sample.

zoo: the `split-heads` layer (einops 'b l (h d) -> b h l d'); it equals the notebook's two
rearranges. Figures: split_heads_small.png, split_heads_312.png.
"""

import torch
from einops import rearrange

import zoo
from zoo import plots

torch.manual_seed(0)
for shape, heads, figure in (((2, 3, 8), 2, "split_heads_small.png"), ((4, 10, 312), 8, "split_heads_312.png")):
    x = torch.randn(*shape)
    split = zoo.create("split-heads", heads=heads)(x)
    two_steps = rearrange(rearrange(x, "b l (h d) -> b l h d", h=heads), "b l h d -> b h l d")
    print(f"{tuple(x.shape)} with {heads} heads -> {tuple(split.shape)}; "
          f"same as the two rearranges: {torch.equal(split, two_steps)}")
    print(f"  position 0 of sample 0, head 1 = features {shape[2] // heads}..{2 * shape[2] // heads - 1}: "
          f"{torch.equal(split[0, 1, 0], x[0, 0, shape[2] // heads: 2 * shape[2] // heads])}")
    plots.head_split(figure, x[0].numpy(), split[0].numpy())
    print(f"  wrote {figure}")
print("merge-heads undoes it:", torch.equal(zoo.create("merge-heads")(split), x))
