import torch
from torch import nn

from mnist_lit.models import CNN, build
from tests.conftest import compose_train


def test_model_cnn_config_builds_the_cnn_from_the_data_config():
    cfg = compose_train(["model=cnn", "dropout=0.3"])
    net = build(dict(cfg.model))
    assert isinstance(net, CNN)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == len(convs)
    assert [m.p for m in net.modules() if isinstance(m, nn.Dropout)] == [0.3]
    assert net(torch.rand(2, *cfg.data.shape)).shape == (2, cfg.data.num_classes)


def test_cnn_shapes_for_other_sizes_and_class_counts():
    net = CNN(in_shape=(1, 32, 32), num_classes=26, channels=(8, 16), convs_per_block=1)
    assert net(torch.rand(5, 1, 32, 32)).shape == (5, 26)
    assert net.layers[-1].in_features == 16 * 8 * 8


def test_cnn_train_and_eval_modes_and_checkpoint_round_trip():
    torch.manual_seed(0)
    net = CNN(channels=(8, 16), dropout=0.5, mean=0.1307, std=0.3081)
    x = torch.rand(16, 1, 28, 28)
    net.train()
    net(x)  # updates the BatchNorm running statistics
    assert net.layers[2].num_batches_tracked == 1
    net.eval()
    assert torch.equal(net(x), net(x))
    # A plain (contiguous) state_dict loads into the channels_last network and gives the same outputs.
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    assert "layers.0.mean" not in state
    again = CNN(channels=(8, 16), dropout=0.5, mean=0.1307, std=0.3081).eval()
    again.load_state_dict(state)
    assert torch.allclose(again(x), net(x), atol=1e-5)
    assert again.layers[1].weight.is_contiguous(memory_format=torch.channels_last)


def test_cnn_learns_a_small_problem():
    torch.manual_seed(0)
    x = torch.rand(64, 1, 28, 28) * 0.2
    y = torch.arange(64) % 4
    for i in range(64):  # the label is which quadrant is bright
        r, c = divmod(int(y[i]), 2)
        x[i, 0, 14 * r:14 * r + 14, 14 * c:14 * c + 14] += 0.8
    net = CNN(num_classes=4, channels=(8, 16), convs_per_block=1)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(30):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    assert (net(x).argmax(1) == y).float().mean() == 1.0


def test_experiment_fast_builds_a_cnn_that_never_works_at_full_resolution():
    cfg = compose_train(["experiment=fast"])
    assert (cfg.epochs, cfg.batch_size, cfg.data.augment) == (2, 256, "none")
    net = build(dict(cfg.model))
    sizes = []
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
            m.register_forward_hook(lambda m, i, o: sizes.append((type(m).__name__, o.shape[-1])))
    assert net(torch.rand(2, *cfg.data.shape)).shape == (2, 10)
    # A 5x5 stride-2 stem (28 -> 14), each conv pooled before its BatchNorm: BatchNorm sees 7, 3 and 1 px.
    assert sizes == [("Conv2d", 14), ("BatchNorm2d", 7), ("Conv2d", 7), ("BatchNorm2d", 3), ("Conv2d", 3),
                     ("BatchNorm2d", 1)]
    assert net.layers[1].kernel_size == (5, 5) and net.layers[1].stride == (2, 2)
    assert net.layers[-1].in_features == 128


def test_pool_first_computes_what_pooling_after_relu_computes():
    # Max-pool commutes with a per-channel increasing map (BatchNorm with a positive scale, then ReLU).
    torch.manual_seed(0)
    late = CNN(channels=(4, 8), convs_per_block=2).eval()
    early = CNN(channels=(4, 8), convs_per_block=2, pool_first=True).eval()
    for m in late.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, positive scales
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
    pairs = [(a, b) for t in (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
             for a, b in zip(*[[m for m in n.modules() if isinstance(m, t)] for n in (late, early)])]
    for a, b in pairs:
        b.load_state_dict(a.state_dict())
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(late(x), early(x), atol=1e-5)
