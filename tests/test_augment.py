import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer
from scipy import ndimage as ndi

from mnist_lit.augment import PRESETS, Augment, make
from mnist_lit.data import DataError, MNISTDataModule
from mnist_lit.module import LitClassifier


def digits(n=16):
    """A batch of bar images in [0, 1], shaped like MNIST's."""
    x = torch.zeros(n, 1, 28, 28)
    for i in range(n):
        x[i, 0, 8 + i % 8: 12 + i % 8, 6:22] = 1.0
    return x


def test_no_settings_is_the_identity():
    x = digits()
    assert torch.allclose(Augment()(x), x, atol=1e-5)


@pytest.mark.parametrize("preset", ["affine", "elastic"])
def test_presets_keep_shape_and_dtype_and_move_every_image(preset):
    x = digits()
    out = make(preset)(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    moved = (out - x).flatten(1).abs().amax(1)
    assert (moved > 0.05).all()  # each image gets its own transform, none the identity
    # Small transforms: the bar is still there, about as much ink (elastic stretches and squeezes more).
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ratio.min() > (0.7 if preset == "affine" else 0.3) and ratio.max() < (1.3 if preset == "affine" else 2.0)


def test_translation_shifts_by_at_most_the_setting():
    x = digits(64)
    out = Augment(translate=3.0)(x)
    rows = torch.arange(28.0).view(1, 28, 1)
    centre = lambda t: (t[:, 0] * rows).sum((1, 2)) / t[:, 0].sum((1, 2))  # noqa: E731
    shift = centre(out) - centre(x)
    assert shift.abs().max() <= 3.0 + 1e-3 and shift.abs().max() > 1.5 and shift.std() > 0.5


def test_deterministic_under_a_seed_and_different_across_epochs_and_seeds():
    x = digits()
    a, b = Augment(**PRESETS["elastic"], seed=1), Augment(**PRESETS["elastic"], seed=1)
    assert torch.equal(a(x, epoch=0), b(x, epoch=0))
    assert torch.equal(a(x, epoch=0), b(x, epoch=0))  # the stream continues identically within an epoch
    assert not torch.equal(a(x, epoch=1), b(x, epoch=2))
    assert not torch.equal(Augment(degrees=10, seed=1)(x), Augment(degrees=10, seed=2)(x))


def test_bad_settings_are_one_clear_error():
    with pytest.raises(DataError, match="unknown data.augment='flip'"):
        MNISTDataModule(augment="flip")
    with pytest.raises(DataError, match="bad data.augment"):
        MNISTDataModule(augment={"rotate": 10})
    assert MNISTDataModule(augment="none").augment is None


def test_augmentation_only_on_training_batches_and_labels_kept(tiny_root):
    # Un-augmented images are bytes / 255; warped ones are interpolated between pixels.
    seen = {}

    class Spy(Callback):
        def _record(self, stage, batch):
            x, y = batch
            off_grid = (x * 255 - (x * 255).round()).abs().max().item()
            seen.setdefault(stage, []).append((off_grid, y.clone()))

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._record("train", batch)

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            self._record("val", batch)

        def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            self._record("test", batch)

    dm = MNISTDataModule(root=tiny_root, val_size=100, batch_size=100, augment="elastic")
    model = LitClassifier(net={"_target_": "mnist_lit.models.MLP", "hidden": [16]}, classes=list("0123456789"))
    trainer = Trainer(max_epochs=1, callbacks=[Spy()], logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert all(off > 1e-3 for off, _ in seen["train"])
    assert all(off < 1e-4 for off, _ in seen["val"] + seen["test"])
    # Labels pass through untouched: the test batches are the test set's labels in order.
    assert torch.equal(torch.cat([y for _, y in seen["test"]]), dm.splits["test"][1])


def test_the_reader_preset_keeps_images_in_range_and_changes_every_one():
    x = digits(64)
    out = make("reader", seed=0)(x, y=torch.arange(64) % 10, classes=list("0123456789"))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert ((out - x).flatten(1).abs().amax(1) > 0.05).all()
    assert (out.flatten(1).amax(1) > 0.9).all()  # every character keeps full-strength ink somewhere


def test_stroke_makes_strokes_bolder_or_thinner():
    x = digits(200)
    out = Augment(stroke=1.0)(x)
    mass = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert mass.max() > 1.3 and mass.min() < 0.8  # each image draws its own amount, both ways


def test_blur_is_made_crisp_again_and_lowres_stays_soft():
    x = torch.zeros(32, 1, 28, 28)
    x[:, 0, 6:22, 12:16] = 1.0  # a "1": a bar four pixels wide

    def soft(out):  # the share of the ink that is neither (nearly) full nor absent
        return ((out > 0.1) & (out < 0.9)).sum((1, 2, 3)).float() / (out > 0.1).sum((1, 2, 3)).float()

    blurred, small = Augment(blur=1.0)(x), Augment(lowres=1.0)(x)
    assert not torch.equal(blurred, x) and not torch.equal(small, x)
    # As preprocess draws them: a blurred photo binarised (crisp), a character a few pixels tall from its gray.
    assert soft(blurred).mean() < 0.5 < soft(small).mean()
    assert (small.flatten(1).amax(1) > 0.99).all()


def test_gaps_break_the_strokes_of_their_share_of_the_images():
    x = torch.zeros(200, 1, 28, 28)
    x[:, 0, 4:24, 12:15] = 1.0  # a "1": a bar three pixels wide
    out = Augment(gaps=0.5, seed=0)(x)
    changed = (out != x).flatten(1).any(1)
    assert 0.35 < changed.float().mean() < 0.65 and (out <= x).all()  # ink only taken away, from about half
    lost = ((out < 0.5) & (x > 0.5)).flatten(1).sum(1).float()[changed] / 60
    assert 0.1 < lost.mean() < 0.35
    pieces = [ndi.label(o[0].numpy() > 0.5)[1] for o in out[changed]]
    assert np.mean([p >= 2 for p in pieces]) > 0.4  # short gaps along the stroke, as a pen running dry leaves


def test_styles_give_ones_a_flag_and_sevens_a_bar_and_leave_other_digits_alone():
    x = torch.zeros(6, 1, 28, 28)
    x[:, 0, 4:24, 13:15] = 1.0  # a straight stroke; its label decides what is drawn on it
    y = torch.tensor([1, 1, 7, 7, 3, 3])
    out = Augment(styles=1.0)(x, y=y, classes=list("0123456789"))
    added = (out - x).clamp(min=0)[:, 0]
    assert torch.equal(out[4:], x[4:])  # a 3 is left as it is
    left_of_stem = added[:2, :, :12].sum((1, 2))
    assert (left_of_stem > 3).all() and (added[:2, 4:9, :12].sum((1, 2)) > 1).all()  # the flag: top left
    bar = added[2:4].sum(2)  # per row
    assert (bar[:, 12:17].sum(1) > 0.8 * bar.sum(1)).all()  # the seven's bar: across the middle
    assert torch.equal(Augment(styles=1.0)(x, y=y, classes=list("ABCDEFGHIJ")), x)  # letters have no 1 or 7


def simard_field(n, alpha=34.0, sigma=4.0, size=28):
    """The textbook elastic field (Simard et al. 2003), in pixels: per-pixel uniform noise, Gaussian-blurred."""
    noise = torch.rand(n * 2, 1, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = torch.arange(-8, 9.0)
    k = torch.exp(-r ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    f = torch.nn.functional.conv2d(torch.nn.functional.pad(noise, (8, 8, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    f = torch.nn.functional.conv2d(torch.nn.functional.pad(f, (0, 0, 8, 8), mode="replicate"), k.view(1, 1, -1, 1))
    return f.view(n, 2, size, size).permute(0, 2, 3, 1) * alpha


def test_elastic_fields_spread_and_bend_as_simards():
    x, ref = digits(), simard_field(1024)
    lag = lambda f, d: torch.corrcoef(torch.stack([f[:, 14, 10, 0], f[:, 14, 10 + d, 0]]))[0, 1]  # noqa: E731
    for grid in (0, 5):
        a = Augment(elastic_alpha=34, elastic_sigma=4, elastic_grid=grid)
        field = a._elastic_field(1024, 28, 28, a.generator("cpu"), x).permute(0, 2, 3, 1) * 14  # grid units to px
        if grid == 0:  # the same field, its noise drawn for pairs of pixels: where the digits are, as smooth
            inner = (slice(None), slice(6, 22), slice(6, 22))
            assert abs(field[inner].std() / ref[inner].std() - 1) < 0.05
            assert abs(lag(field, 4) - lag(ref, 4)) < 0.06 and abs(lag(field, 8) - lag(ref, 8)) < 0.1
        else:  # a coarse grid of control points: as large displacements over the image
            assert abs(field.std() / ref.std() - 1) < 0.1


def test_the_matrix_grids_are_torchs_own():
    # The affine grid and the control-point field are drawn by matrix products: the same as F.affine_grid and
    # F.interpolate(bicubic), so recipes trained before (the shipped reader's) see the same warps.
    x, theta = torch.zeros(3, 1, 20, 28), torch.randn(3, 2, 3)
    a = Augment(elastic_alpha=16, elastic_grid=4)
    grid = (theta @ a._matrix("pixels", 20, 28, x)).view(3, 2, 20, 28).permute(0, 2, 3, 1)
    assert torch.allclose(grid, torch.nn.functional.affine_grid(theta, [3, 1, 20, 28], align_corners=False), atol=1e-5)
    coarse = torch.randn(3, 2, 4, 4)
    enlarged = a._matrix("rows", 20, 28, x) @ coarse @ a._matrix("cols", 20, 28, x).T
    expected = torch.nn.functional.interpolate(coarse, size=(20, 28), mode="bicubic", align_corners=True)
    assert torch.allclose(enlarged, expected, atol=1e-5)
