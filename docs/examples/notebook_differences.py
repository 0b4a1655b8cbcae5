"""The reference notebook's bugs that zoo fixes, each shown with numbers (docs/notebook-differences.md).

1. Loss averaging: the notebook prints sum(batch losses) / batch_size, which depends on how many
   batches there are; zoo reports the mean over samples.
2. Always-on dropout: an nn.Dropout built inside forward() is a new module in training mode, so
   it drops even after model.eval(); zoo's dropout is a submodule, off in eval mode.
3. The encoder's mask: shape (B, 1, L, 1) masks query rows, not padded keys, so real tokens
   attend to padding; zoo masks keys, (B, 1, 1, L).
4. Shared encoder layers: the notebook applies one block n times; zoo's layers have their own weights.
"""

import torch
from torch import nn

import zoo

torch.manual_seed(0)

print("1. loss averaging: mnist-mlp on the 10,000 test images")
model, data, loss = zoo.load("mnist-mlp"), zoo.create("mnist", split="test"), zoo.create("cross-entropy")
with torch.no_grad():
    for batch_size in (100, 320, 1000):
        batch_losses = [loss(model(x), y) for x, y in
                        (data.batch(slice(i, i + batch_size)) for i in range(0, len(data), batch_size))]
        sizes = [min(batch_size, len(data) - i) for i in range(0, len(data), batch_size)]
        mean = sum(value.item() * n for value, n in zip(batch_losses, sizes)) / len(data)
        notebook = sum(value.item() for value in batch_losses) / batch_size
        print(f"   batch {batch_size:4d}: notebook's figure {notebook:.4f}   mean loss {mean:.4f}")


class DropoutBuiltInForward(nn.Module):
    """The notebook's pattern: a Dropout module created during the forward pass."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.Dropout(0.1)(x)


print("2. dropout in eval mode: share of 10,000 activations zeroed")
ones = torch.ones(10_000)
print(f"   dropout built in forward(): {(DropoutBuiltInForward().eval()(ones) == 0).float().mean().item():.4f}")
print(f"   zoo's dropout layer:        {(zoo.create('dropout', p=0.1).eval()(ones) == 0).float().mean().item():.4f}")

print("3. padding: change what stands at 2 padded positions of 8; largest change at the 6 real positions")
attention = zoo.create("multi-head-attention", embed_dim=24, num_heads=4).eval()
x = torch.randn(2, 8, 24)
padded = x.clone()
padded[:, 6:] = torch.randn(2, 2, 24) * 10
real = torch.tensor([1, 1, 1, 1, 1, 1, 0, 0])
with torch.no_grad():
    for label, mask in (("notebook's (B, 1, L, 1) mask", real.view(1, 1, 8, 1).expand(2, 1, 8, 1)),
                        ("zoo's (B, 1, 1, L) key mask ", real.view(1, 1, 1, 8).expand(2, 1, 1, 8))):
        change = (attention(x, mask=mask) - attention(padded, mask=mask))[:, :6].abs().max().item()
        print(f"   {label}: {change:.4f}")

print("4. encoder layers: parameters with 1 and 3 layers")
counts = {n: sum(p.numel() for p in zoo.create("transformer-encoder", layers=n).parameters()) for n in (1, 3)}
encoder = zoo.create("transformer-encoder", layers=3)
block = sum(p.numel() for p in encoder.layers[0].parameters())
print(f"   zoo: {counts[1]:,} and {counts[3]:,} (3 layers add 2 x {block:,}: each block has its own weights)")
print(f"   notebook: {counts[1]:,} for any number of layers (one block, applied again and again)")
same = torch.equal(encoder.layers[0].attention.query_proj.weight, encoder.layers[1].attention.query_proj.weight)
print(f"   zoo's layer 0 and layer 1 share weights: {same}")
