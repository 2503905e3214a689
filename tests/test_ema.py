import torch

from mnist_lit.callbacks import warm_ema
from mnist_lit.data import MNISTDataModule
from mnist_lit.module import LitClassifier
from mnist_lit.train import train
from tests.conftest import FAST, compose_train


def accuracy(hparams, state, x, y):
    model = LitClassifier(**hparams)
    model.load_state_dict(state)
    return (model.eval()(x).argmax(1) == y).float().mean().item()


def test_ema_checkpoint_holds_the_average_and_the_test_uses_it(tiny_root, tmp_path):
    # A short memory (decay 0.9) over 20 steps: the average clearly differs from the last weights.
    cfg = compose_train([f"data.root={tiny_root}", "data.val_size=100", f"run_dir={tmp_path / 'run'}", "epochs=2",
                         "batch_size=50", "model.hidden=[16]", "callbacks=[default,ema]", "callbacks.ema.decay=0.9",
                         *FAST])
    metrics = train(cfg)
    ckpt = torch.load(metrics["best_ckpt"], weights_only=True)
    average, current = ckpt["state_dict"], ckpt["current_model_state"]
    assert not torch.equal(average["net.layers.2.weight"], current["net.layers.2.weight"])

    dm = MNISTDataModule(root=tiny_root, val_size=100)
    dm.setup()
    x, y = dm.splits["test"]
    x = x.unsqueeze(1).float() / 255
    # The reported test accuracy is the averaged weights' (Lightning alone would test the raw ones).
    assert abs(metrics["test/acc"] - accuracy(ckpt["hyper_parameters"], average, x, y)) < 1e-6


def test_the_average_forgets_the_first_weights_within_a_short_run():
    update = warm_ema(0.999)
    average = torch.ones(1)  # the weights at the first step; every later step's are 0
    for n in range(1, 3001):
        average = update(average, torch.zeros(1), torch.tensor(n))
    assert average.item() < 1e-6  # the plain EMA at 0.999 keeps 0.999**3000 = 5% of them
    assert abs(update(torch.ones(1), torch.zeros(1), torch.tensor(10 ** 6)).item() - 0.999) < 1e-6  # then 0.999
