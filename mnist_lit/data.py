"""MNIST-family datasets held as one uint8 tensor each and batched by index."""
import math
import string
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch

from mnist_lit import augment as augmentation


class DataError(RuntimeError):
    """The dataset files are missing or unreadable; the message says how to fix it."""


@dataclass(frozen=True)
class Spec:
    """Where torchvision keeps one dataset, and what its labels mean."""

    folder: str  # torchvision's folder under data.root, and its dataset class name
    files: tuple  # train images, train labels, test images, test labels (IDX, uncompressed)
    classes: tuple
    download_kwargs: dict = field(default_factory=dict)
    transposed: bool = False  # EMNIST stores images transposed relative to MNIST
    label_offset: int = 0  # EMNIST letters count from 1
    # How the dataset drew its characters into 28x28, which preprocess repeats for a model trained on it:
    # "mnist" (longest side 20 px, centred by centre of mass) or "emnist" (longest side 24 px, centred by box).
    framing: str = "mnist"


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def emnist(split: str, classes, label_offset=0) -> Spec:
    """An EMNIST split: torchvision's EMNIST(split=...) unpacks every split into EMNIST/raw/emnist-<split>-*."""
    files = tuple(f"emnist-{split}-{part}-{kind}-idx{ndim}-ubyte"
                  for part in ("train", "test") for kind, ndim in (("images", 3), ("labels", 1)))
    return Spec("EMNIST", files, tuple(classes), {"split": split}, transposed=True, label_offset=label_offset,
                framing="emnist")


SPECS = {
    "mnist": Spec("MNIST", MNIST_FILES, tuple(string.digits)),
    # Letters: upper and lower case merged into 26 classes, labelled 1-26 in the files.
    "emnist_letters": emnist("letters", string.ascii_uppercase, label_offset=1),
    # Balanced: 47 classes; the lower-case letters that look like their capitals are merged into them.
    "emnist_balanced": emnist("balanced", string.digits + string.ascii_uppercase + "abdefghnqrt"),
    "emnist_digits": emnist("digits", string.digits),
    "fashion_mnist": Spec("FashionMNIST", MNIST_FILES, ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    # Kuzushiji (cursive Japanese): torchvision's romanised names of the ten hiragana.
    "kmnist": Spec("KMNIST", MNIST_FILES, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


def read_idx(path: Path, ndim: int) -> torch.Tensor:
    """Reads an uncompressed IDX file of unsigned bytes (the MNIST format) into a uint8 tensor."""
    raw = path.read_bytes()
    # Header: two zero bytes, type code 0x08 (ubyte), number of dimensions, then big-endian int32 sizes.
    if len(raw) < 4 + 4 * ndim or raw[:3] != b"\x00\x00\x08" or raw[3] != ndim:
        raise DataError(f"{path} is not an IDX file of {ndim}-d unsigned bytes (corrupt?): "
                        f"delete it and download again")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", ndim, 4))
    body = raw[4 + 4 * ndim:]
    if len(body) != math.prod(shape):
        raise DataError(f"{path} holds {len(body)} bytes of data but its header says {shape} "
                        f"(truncated?): delete it and download again")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(shape)


class TensorLoader:
    """Yields (images, labels) batches by indexing whole-dataset tensors: no workers, no per-sample Python."""

    def __init__(self, x, y, batch_size, shuffle=False, seed=0, rank=0, world_size=1, epoch=lambda: 0):
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        # The order is a function of (seed, epoch), so a resumed run sees the batches it would have seen.
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, epoch

    def _indices(self):
        n = len(self.x) - len(self.x) % self.world_size  # every process gets the same number
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch())
            idx = torch.randperm(len(self.x), generator=g)[:n]
        else:
            idx = torch.arange(n)
        return idx[self.rank::self.world_size].to(self.x.device)

    def __len__(self):
        return math.ceil(len(self.x) // self.world_size / self.batch_size)

    def __iter__(self):
        idx = self._indices()
        for i in range(0, len(idx), self.batch_size):
            j = idx[i:i + self.batch_size]
            yield self.x[j], self.y[j]


class MNISTDataModule(L.LightningDataModule):
    """torchvision's MNIST-family splits: train/val carved from the official training set, official test set."""

    def __init__(self, name="mnist", root="data", num_classes=10, shape=(1, 28, 28), mean=0.0, std=1.0,
                 batch_size=256, eval_batch_size=1000, val_size=5000, split_seed=0, seed=0, download=True,
                 device_resident=True, augment=None):
        super().__init__()
        if name not in SPECS:
            raise DataError(f"unknown dataset data.name={name!r}: use one of {', '.join(SPECS)}")
        self.spec = SPECS[name]
        if num_classes != len(self.spec.classes):
            raise DataError(f"data.num_classes={num_classes} but {name} has {len(self.spec.classes)} classes: "
                            f"fix conf/data/{name}.yaml")
        self.name, self.root, self.batch_size, self.eval_batch_size = name, Path(root), batch_size, eval_batch_size
        self.val_size, self.split_seed, self.seed, self.download = val_size, split_seed, seed, download
        self.shape, self.mean, self.std, self.device_resident = tuple(shape), mean, std, device_resident
        self.splits: dict = {}
        try:  # training batches only; see on_after_batch_transfer
            self.augment = augmentation.make(augment, seed)
        except ValueError as e:
            raise DataError(str(e)) from None

    @property
    def raw_dir(self) -> Path:
        return self.root / self.spec.folder / "raw"

    @property
    def classes(self) -> list:
        return list(self.spec.classes)

    @property
    def framing(self) -> str:
        return self.spec.framing

    def _missing(self):
        return [f for f in self.spec.files if not (self.raw_dir / f).is_file()]

    def prepare_data(self):
        if not self._missing() or not self.download:
            return
        import torchvision

        try:  # torchvision's own download path, as online users expect
            for train in (True, False):
                getattr(torchvision.datasets, self.spec.folder)(
                    self.root, train=train, download=True, **self.spec.download_kwargs)
        except Exception as e:  # offline, proxy, mirror down: reported below as one line
            self._download_error = f"{type(e).__name__}: {e}".splitlines()[0]

    def _load(self, images: str, labels: str):
        x, y = read_idx(self.raw_dir / images, 3), read_idx(self.raw_dir / labels, 1).long()
        if len(x) != len(y):
            raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels: "
                            f"delete {self.raw_dir} and download again")
        if self.spec.transposed:
            # EMNIST's files hold each image mirrored across its diagonal: transposing makes letters upright,
            # as people draw them and as predict reads them.
            x = x.transpose(1, 2).contiguous()
        first, n = self.spec.label_offset, len(self.spec.classes)
        if len(y) and not (first <= int(y.min()) and int(y.max()) < first + n):
            raise DataError(f"{labels} has labels {int(y.min())} to {int(y.max())}, but the {n} classes of "
                            f"{self.name} are labelled {first} to {first + n - 1}: are these the {self.name} "
                            f"files? Replace them, or delete {self.raw_dir} to download again")
        return x, y - first  # classes numbered from 0

    def setup(self, stage=None):
        if not self.splits:
            self._split()
        if self.trainer is not None and self.device_resident:
            # The dataset moves to the accelerator once; batches are then taken there.
            device = self.trainer.strategy.root_device
            self.splits = {k: (x.to(device), y.to(device)) for k, (x, y) in self.splits.items()}

    def _split(self):
        missing = self._missing()
        if missing:
            why = getattr(self, "_download_error", "download disabled (data.download=false)")
            raise DataError(f"{self.name} not found in {self.raw_dir.resolve()} (missing {', '.join(missing)}; "
                            f"{why}): put those files there, or set data.root=DIR to a folder that holds "
                            f"{self.spec.folder}/raw/ with them")
        x, y = self._load(*self.spec.files[:2])
        if (1, *x.shape[1:]) != self.shape:
            raise DataError(f"{self.name} images are {tuple(x.shape[1:])} but data.shape={list(self.shape)}: "
                            f"fix conf/data/{self.name}.yaml")
        if not 0 < self.val_size < len(x):
            raise DataError(f"data.val_size={self.val_size} must be between 1 and {len(x) - 1}")
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.split_seed))
        val, train = perm[:self.val_size], perm[self.val_size:]
        self.splits = {"train": (x[train], y[train]), "val": (x[val], y[val]),
                       "test": self._load(*self.spec.files[2:])}

    def _loader(self, split, batch_size, shuffle=False):
        x, y = self.splits[split]
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        if shuffle and batch_size % world:  # training: every process takes an equal share of the batch
            raise DataError(f"batch_size={batch_size} does not divide over {world} processes: "
                            f"use a multiple of {world}")
        # Evaluation batches only set how many images go through at once: any size divides well enough.
        return TensorLoader(x, y, -(-batch_size // world), shuffle, self.seed, rank, world,
                            epoch=lambda: self.trainer.current_epoch if self.trainer else 0)

    def train_dataloader(self):
        n = len(self.splits["train"][0])
        if self.batch_size > n:
            raise DataError(f"batch_size={self.batch_size} is larger than the training set ({n} images): "
                            f"use batch_size={n} or less")
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self):
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self):
        return self._loader("test", self.eval_batch_size)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        if isinstance(batch, torch.Tensor):  # the model's example_input_array (the summary's FLOPs): already inputs
            return batch
        if self.trainer is not None and self.trainer.training:
            return self.inputs(batch, self.trainer.current_epoch, self.trainer.global_rank)
        return self.inputs(batch)

    def inputs(self, batch, epoch=None, rank=0):
        """A batch as the network takes it: floats in [0, 1], augmented when it is for training (epoch given)."""
        x, y = batch
        x = x.unsqueeze(1).float().div_(255)
        if self.augment is not None and epoch is not None:
            x = self.augment(x, epoch, rank, y, self.spec.classes)
        return x, y
