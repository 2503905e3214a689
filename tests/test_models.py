import pytest
import torch
from torch import nn

from mnist_lit.models import MLP, Dropout, build
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


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_fast_dropout_drops_p_keeps_the_mean_and_masks_the_gradient(p):
    x = torch.full((1000, 1000), 2.0, requires_grad=True)
    torch.manual_seed(0)
    y = Dropout(p)(x)
    dropped = y == 0
    assert dropped.float().mean().item() == pytest.approx(p, abs=0.002)  # 1e6 draws: std 5e-4
    assert y[~dropped].unique().tolist() == pytest.approx([2 / (1 - p)], rel=1e-4)
    y.sum().backward()
    assert torch.equal(x.grad == 0, dropped)  # the gradient flows through kept elements only
    torch.manual_seed(0)
    assert torch.equal(Dropout(p)(x), y)  # seeded like nn.Dropout
    # Each of the four 16-bit lanes of a 64-bit draw drops at rate p (a biased top bit would show here).
    assert dropped.view(-1, 4).float().mean(0).tolist() == pytest.approx([p] * 4, abs=0.004)
    assert torch.equal(Dropout(p).eval()(x), x)


def test_build_refuses_anything_but_our_networks():
    with pytest.raises(ValueError, match="unknown network"):
        build({"_target_": "os.system", "command": "true"})
    with pytest.raises(ValueError, match="unknown network"):
        build({"_target_": "mnist_lit.models.build"})
