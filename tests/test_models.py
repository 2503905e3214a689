import pytest
import torch
from torch import nn

from mnist_lit.models import MLP, build
from tests.conftest import compose_train


def test_default_mlp_is_the_tutorials_network_with_relu_and_dropout():
    cfg = compose_train()
    net = build(dict(cfg.model))
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 1024), (1024, 512), (512, 256), (256, 10)]
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 3
    assert all(m.p == cfg.dropout for m in net.modules() if isinstance(m, nn.Dropout))


def test_mlp_shapes_and_dropout_only_in_training():
    net = MLP(hidden=(64,), dropout=0.5, mean=0.1307, std=0.3081)
    x = torch.rand(8, 1, 28, 28)
    assert net(x).shape == (8, 10)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))
    assert "layers.0.mean" not in net.state_dict()  # normalisation lives in hyperparameters


def test_build_refuses_anything_but_our_networks():
    with pytest.raises(ValueError, match="unknown network"):
        build({"_target_": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="unknown network"):
        build({"_target_": "mnist_lit.models.build"})
