import numpy as np
import pytest
import torch

from mnist_lit.data import DataError, MNISTDataModule, TensorLoader, read_idx
from tests.conftest import write_idx, write_mnist


def test_read_idx_round_trip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x", a)
    assert torch.equal(read_idx(tmp_path / "x", 3), torch.from_numpy(a))


def test_corrupt_and_truncated_idx_get_clear_errors(tmp_path):
    (tmp_path / "garbage").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not an IDX file.*download again"):
        read_idx(tmp_path / "garbage", 3)
    write_idx(tmp_path / "x", np.zeros((5, 28, 28), np.uint8))
    (tmp_path / "x").write_bytes((tmp_path / "x").read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "x", 3)


def test_splits_are_disjoint_sized_and_test_set_untouched(tiny_root):
    dm = MNISTDataModule(root=tiny_root, val_size=100)
    dm.setup()
    arrays = write_mnist(tiny_root.parent / "again")  # same seed: the same arrays that were written
    (xtr, ytr), (xva, yva), (xte, yte) = dm.splits["train"], dm.splits["val"], dm.splits["test"]
    assert (len(xtr), len(xva), len(xte)) == (500, 100, 200)
    assert torch.equal(xte, torch.from_numpy(arrays["test"][0]))
    assert torch.equal(yte, torch.from_numpy(arrays["test"][1]).long())
    # Every training image lands, with its own label, in exactly one of train/val.
    rows = lambda x, y: {(bytes(r), int(c)) for r, c in zip(x.reshape(len(x), -1).numpy(), y)}  # noqa: E731
    assert rows(xtr, ytr).isdisjoint(rows(xva, yva))
    assert rows(xtr, ytr) | rows(xva, yva) == rows(torch.from_numpy(arrays["train"][0]), arrays["train"][1])
    # The split is fixed by split_seed, not by the run's seed.
    other = MNISTDataModule(root=tiny_root, val_size=100, seed=123)
    other.setup()
    assert torch.equal(other.splits["val"][0], xva)


def test_batches_are_normalised_float_images(tiny_root):
    dm = MNISTDataModule(root=tiny_root, val_size=100, batch_size=32)
    dm.setup()
    x, y = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.long
    assert x.min() >= 0 and x.max() == 1.0


def test_loader_visits_each_sample_once_per_epoch_in_a_seeded_order():
    x, y = torch.arange(10).view(10, 1), torch.arange(10)
    epoch = [0]
    loader = TensorLoader(x, y, batch_size=4, shuffle=True, seed=1, epoch=lambda: epoch[0])
    first = torch.cat([b for _, b in loader])
    assert len(loader) == 3 and sorted(first.tolist()) == list(range(10))
    assert torch.equal(first, torch.cat([b for _, b in loader]))  # same epoch, same order
    epoch[0] = 1
    assert not torch.equal(first, torch.cat([b for _, b in loader]))
    # Two processes see disjoint halves of the same permutation.
    halves = [torch.cat([b for _, b in TensorLoader(x, y, 2, True, 1, rank, 2)]) for rank in (0, 1)]
    assert set(halves[0].tolist()).isdisjoint(halves[1].tolist()) and len(torch.cat(halves)) == 10


def test_missing_data_offline_names_folder_files_and_fix(tmp_path, monkeypatch):
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    dm = MNISTDataModule(root=tmp_path / "nowhere")
    dm.prepare_data()
    with pytest.raises(DataError) as e:
        dm.setup()
    msg = str(e.value)
    assert "\n" not in msg and str((tmp_path / "nowhere" / "MNIST" / "raw")) in msg
    assert "t10k-labels-idx1-ubyte" in msg and "data.root=" in msg and "Error downloading" in msg


def test_config_mismatches_are_reported(tiny_root):
    with pytest.raises(DataError, match="num_classes=7"):
        MNISTDataModule(root=tiny_root, num_classes=7)
    with pytest.raises(DataError, match="unknown dataset"):
        MNISTDataModule(name="cifar")
