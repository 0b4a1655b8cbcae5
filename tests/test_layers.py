"""Built-in layers and models: the notebook's shapes, and equality with plain reference formulas."""

import math
import re

import pytest
import torch
from conftest import fixture_plugin, make_registry

import zoo
from zoo.testing import check_component

torch.manual_seed(0)
TOL = dict(atol=1e-5, rtol=1e-5)


def ref_linear(x, w, b):
    return x @ w.T + b


def ref_layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def ref_attention(q, k, v, mask=None):
    """The notebook's formula: softmax(q k^T / sqrt(d) + mask) v, with masked keys at -inf."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(mask == 0, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def split(x, heads):
    b, l, w = x.shape
    return x.reshape(b, l, heads, w // heads).permute(0, 2, 1, 3)


def merge(x):
    b, h, l, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(b, l, h * d)


def test_every_builtin_layer_and_model_builds_with_defaults():
    for component in [c for c in zoo.components(kind="layer") + zoo.components(kind="model") if not c.library]:
        assert isinstance(component.build(), torch.nn.Module), component.name


def test_linear_relu_flatten_match_their_formulas():
    layer = zoo.create("linear")
    x = torch.randn(8, 10)
    assert torch.allclose(layer(x), ref_linear(x, layer.weight, layer.bias), **TOL)
    assert layer(x).shape == (8, 5)
    assert torch.equal(zoo.create("relu")(x), torch.where(x > 0, x, torch.zeros_like(x)))
    assert zoo.create("flatten")(torch.randn(4, 1, 28, 28)).shape == (4, 784)


def test_layer_norm_and_embedding_match_their_formulas():
    norm = zoo.create("layer-norm", normalized_shape=312)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    x = torch.randn(4, 10, 312) * 3 + 1
    assert torch.allclose(norm(x), ref_layer_norm(x, norm.weight, norm.bias), **TOL)
    table = zoo.create("embedding")
    ids = torch.randint(0, 1024, (2, 5))
    assert torch.equal(table(ids), table.weight[ids])


def test_dropout_is_identity_in_eval_and_scales_in_training():
    drop = zoo.create("dropout", p=0.5)
    x = torch.ones(10_000)
    assert torch.equal(drop.eval()(x), x)
    out = drop.train()(x)
    assert set(out.unique().tolist()) == {0.0, 2.0}
    assert 0.45 < (out == 0).float().mean().item() < 0.55


def test_sequential_applies_components_in_order():
    stack = zoo.create("sequential", layers=[zoo.create("linear", in_features=3, out_features=4), zoo.create("relu")])
    x = torch.randn(2, 3)
    assert torch.equal(stack(x), torch.relu(stack[0](x)))


def test_feed_forward_matches_its_formula_and_the_notebook_shape():
    block = zoo.create("feed-forward").eval()
    x = torch.randn(16, 50, 312)
    out = block(x)
    assert out.shape == (16, 50, 312)
    hidden = torch.relu(ref_linear(x, block.linear1.weight, block.linear1.bias))
    assert block.linear1.weight.shape == (1248, 312)
    expected = ref_layer_norm(
        torch.relu(ref_linear(hidden, block.linear2.weight, block.linear2.bias)),
        block.layer_norm.weight, block.layer_norm.bias,
    )
    assert torch.allclose(out, expected, **TOL)


def test_positional_encoding_matches_the_sinusoid_formula():
    layer = zoo.create("positional-encoding", d_model=8, max_len=6).eval()
    expected = torch.zeros(6, 8)
    for pos in range(6):
        for i in range(0, 8, 2):
            angle = pos / 10000 ** (i / 8)
            expected[pos, i], expected[pos, i + 1] = math.sin(angle), math.cos(angle)
    x = torch.randn(3, 5, 8)
    assert torch.allclose(layer(x), x + expected[:5], **TOL)
    assert "pe" not in layer.state_dict() and not list(layer.parameters())


def test_positional_encoding_defaults_and_odd_width():
    layer = zoo.create("positional-encoding").eval()
    assert layer(torch.zeros(2, 80, 312)).shape == (2, 80, 312)
    odd = zoo.create("positional-encoding", d_model=7, max_len=4).eval()  # the notebook's formula fails here
    assert odd(torch.zeros(1, 4, 7)).shape == (1, 4, 7)


def test_positional_encoding_rejects_inputs_longer_than_max_len():
    layer = zoo.create("positional-encoding", d_model=8, max_len=4)
    with pytest.raises(zoo.ZooError, match="input has 5 positions but max_len is 4"):
        layer(torch.zeros(1, 5, 8))


def test_split_and_merge_heads():
    x = torch.randn(4, 10, 312)
    heads = zoo.create("split-heads", heads=8)(x)
    assert heads.shape == (4, 8, 10, 39)
    assert torch.equal(heads, split(x, 8))
    assert torch.equal(zoo.create("merge-heads")(heads), x)
    small = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)  # the notebook's (2, 3, 8) with 2 heads
    assert torch.equal(zoo.create("split-heads", heads=2)(small)[0, 1, 0], small[0, 0, 4:])
    with pytest.raises(zoo.ZooError, match="width 312 is not divisible by heads=7"):
        zoo.create("split-heads", heads=7)(x)


def _reference_mha(mha, q_in, k_in, v_in, mask, heads):
    q = split(ref_linear(q_in, mha.query_proj.weight, mha.query_proj.bias), heads)
    k = split(ref_linear(k_in, mha.key_proj.weight, mha.key_proj.bias), heads)
    v = split(ref_linear(v_in, mha.value_proj.weight, mha.value_proj.bias), heads)
    return ref_linear(merge(ref_attention(q, k, v, mask)), mha.out_proj.weight, mha.out_proj.bias)


def test_multi_head_attention_matches_the_formula_with_and_without_mask():
    mha = zoo.create("multi-head-attention", embed_dim=312, num_heads=6).eval()
    x = torch.randn(4, 10, 312)
    assert mha(x).shape == (4, 10, 312)
    assert torch.allclose(mha(x), _reference_mha(mha, x, x, x, None, 6), **TOL)
    mask = torch.ones(4, 1, 1, 10)
    mask[:, :, :, 7:] = 0
    assert torch.allclose(mha(x, mask=mask), _reference_mha(mha, x, x, x, mask, 6), **TOL)
    memory = torch.randn(4, 12, 312)
    cross = mha(x, memory, memory)
    assert cross.shape == (4, 10, 312)
    assert torch.allclose(cross, _reference_mha(mha, x, memory, memory, None, 6), **TOL)


def test_masked_keys_get_probability_exactly_zero():
    mha = zoo.create("multi-head-attention", embed_dim=8, num_heads=2).eval()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([1, 1, 1, 0, 0]).view(1, 1, 1, 5)
    out = mha(x, mask=mask)
    changed = x.clone()
    changed[:, 3:] = torch.randn(2, 2, 8) * 100  # whatever sits at masked keys
    assert torch.allclose(mha(changed, mask=mask)[:, :3], out[:, :3], atol=1e-6)


def test_attention_probabilities_are_what_forward_applies_including_fully_masked_queries():
    torch.manual_seed(0)
    mha = zoo.create("multi-head-attention", embed_dim=15, num_heads=3).eval()
    x = torch.randn(2, 4, 15)
    mask = torch.ones(2, 3, 4, 4)
    mask[0, :, :, 3] = 0  # sample 0: the last key is padding for every query
    mask[0, 1, 3] = 0  # ... and head 1's last query sees no key at all
    probs = mha.probabilities(x, mask=mask)
    assert probs.shape == (2, 3, 4, 4)
    assert torch.equal(probs[0, :, :, 3], torch.zeros(3, 4)) and torch.equal(probs[0, 1, 3], torch.zeros(4))
    sums = probs.sum(-1)
    sums[0, 1, 3] = 1
    assert torch.allclose(sums, torch.ones(2, 3, 4))
    values = split(mha.value_proj(x), 3)
    assert torch.allclose(mha(x, mask=mask), mha.out_proj(merge(probs @ values)), atol=1e-5)


def test_attention_dropout_only_in_training():
    mha = zoo.create("multi-head-attention", embed_dim=8, num_heads=2, dropout=0.5)
    x = torch.randn(2, 5, 8)
    assert torch.equal(mha.eval()(x), mha(x))
    mha.train()
    assert not torch.equal(mha(x), mha(x))


def test_hidden_dim_must_divide_by_heads():
    with pytest.raises(zoo.ZooError, match="hidden_dim=10 is not divisible by num_heads=3"):
        zoo.create("multi-head-attention", embed_dim=9, num_heads=3, hidden_dim=10)
    mha = zoo.create("multi-head-attention", embed_dim=12, num_heads=2, hidden_dim=8)
    assert mha(torch.randn(1, 3, 12)).shape == (1, 3, 12)


def test_mnist_mlp_has_the_notebooks_architecture_and_parameter_names():
    class NeuralNetwork(torch.nn.Module):  # the notebook's class, as its state dict would be saved
        def __init__(self):
            super().__init__()
            self.flatten = torch.nn.Flatten()
            self.linear_relu_stack = torch.nn.Sequential(
                torch.nn.Linear(784, 312), torch.nn.ReLU(), torch.nn.Linear(312, 256), torch.nn.ReLU(),
                torch.nn.Linear(256, 10))

        def forward(self, x):
            return self.linear_relu_stack(self.flatten(x))

    notebook = NeuralNetwork()
    model = zoo.create("mnist-mlp")
    model.load_state_dict(notebook.state_dict(), strict=True)
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(model(x), notebook(x))
    assert model(x).shape == (5, 10)
    assert sum(p.numel() for p in model.parameters()) == 784 * 312 + 312 + 312 * 256 + 256 + 256 * 10 + 10


def test_simple_net_is_one_linear_layer():
    model = zoo.create("simple-net")
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert torch.allclose(model(x), ref_linear(x, model.linear.weight, model.linear.bias), **TOL)
    assert model(x).shape == (2, 5)


def test_transformer_encoder_shapes_and_independent_layers():
    encoder = zoo.create("transformer-encoder").eval()
    tokens = torch.randint(1, 1024, (2, 5))
    assert encoder(tokens).shape == (2, 5, 312)
    first, second = encoder.layers[0], encoder.layers[1]
    assert len(encoder.layers) == 3
    assert first.attention.query_proj.weight.data_ptr() != second.attention.query_proj.weight.data_ptr()
    assert not torch.equal(first.attention.query_proj.weight, second.attention.query_proj.weight)


def test_transformer_encoder_padding_never_changes_real_positions():
    encoder = zoo.create("transformer-encoder", vocab_size=50, max_len=12, dim=24, heads=4, layers=2).eval()
    tokens = torch.randint(1, 50, (3, 12))
    keep = torch.ones(3, 12, dtype=torch.bool)
    keep[:, 8:] = False
    out = encoder(tokens, mask=keep)
    scrambled = tokens.clone()
    scrambled[:, 8:] = torch.randint(1, 50, (3, 4))
    assert torch.allclose(encoder(scrambled, mask=keep)[:, :8], out[:, :8], atol=1e-6)
    # the default mask comes from token 0 = padding
    padded = tokens.clone()
    padded[:, 8:] = 0
    assert torch.allclose(encoder(padded)[:, :8], out[:, :8], atol=1e-6)


def test_transformer_encoder_is_deterministic_in_eval_mode():
    encoder = zoo.create("transformer-encoder", vocab_size=50, max_len=8, dim=24, heads=4, layers=2)
    tokens = torch.randint(1, 50, (2, 8))
    encoder.eval()
    assert torch.equal(encoder(tokens), encoder(tokens))
    encoder.train()
    assert not torch.equal(encoder(tokens), encoder(tokens))


@pytest.mark.parametrize("component", [c for c in zoo.components() if c.kind in ("layer", "model") and not c.library],
                         ids=lambda c: c.name)
def test_every_builtin_module_passes_the_conformance_check(component):
    check_component(component.name, component.kind)


@pytest.mark.parametrize("name, message", [
    ("fx-unused", "'fx-unused': parameter unused.weight gets no gradient"),
    ("fx-unseeded", "'fx-unseeded': the same seed built a different weight"),
])
def test_the_conformance_check_names_what_is_wrong(name, message):
    registry = make_registry(fixture_plugin("fx-flawed", "fx_flawed"))
    with pytest.raises(AssertionError, match=re.escape(message)):
        check_component(name, registry=registry)
