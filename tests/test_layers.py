import torch
from torch import nn

from mbrl.nn import EnsembleLinear


def test_batched_matches_looped_members():
    layer = EnsembleLinear(5, 3, ensemble_size=4)
    x = torch.randn(4, 8, 5)
    out = layer(x)
    assert out.shape == (4, 8, 3)
    for e in range(4):
        ref = nn.functional.linear(x[e], layer.weight[e].T, layer.bias[e, 0])
        torch.testing.assert_close(out[e], ref)


def test_shared_input_is_broadcast_to_every_member():
    layer = EnsembleLinear(5, 3, ensemble_size=4)
    x = torch.randn(8, 5)
    torch.testing.assert_close(layer(x), layer(x.expand(4, 8, 5)))


def test_members_are_initialised_independently():
    layer = EnsembleLinear(16, 16, ensemble_size=3)
    assert not torch.allclose(layer.weight[0], layer.weight[1])
