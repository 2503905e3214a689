"""python -m mnist_lit.eval: a dataset's test split, folders and CSVs of labelled images, the users' benchmark."""
import json
import multiprocessing

import numpy as np
import pytest
from PIL import Image

from mnist_lit.eval import eval_rows, eval_users, main
from mnist_lit.predict import DEFAULT_MODEL, Reader
from mnist_lit.userimages import ALL_KINDS
from tests.conftest import SHARED_DATA, needs_real_mnist
from tests.conftest import SEVEN, TWO, draw


def run(args, capsys):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.slow
def test_the_test_split_gives_the_checkpoints_own_test_accuracy(tiny_checkpoint, tmp_path, capsys):
    run_dir = tiny_checkpoint.parents[1]
    rc, out, err = run(["--ckpt", tiny_checkpoint, f"data.root={run_dir / 'data'}", "data.val_size=100",
                        "--out", tmp_path / "ev"], capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    test_acc = json.loads((run_dir / "metrics.json").read_text())["test/acc"]
    s = report["sets"]["mnist"]
    assert s["n"] == 200 and abs(s["accuracy"] - test_acc) < 1e-6 and s["refused"] == 0
    assert sum(v["total"] for v in s["per_class"].values()) == 200
    assert np.asarray(s["confusion"]).shape == (10, 11) and (tmp_path / "ev" / "confusion_matrix.png").is_file()
    assert "| mnist | 200 |" in out and "per class: 0 " in out


def labelled_folder(root):
    """Two subfolders of images named after their labels, and one blank page (a refusal)."""
    for sub, strokes, label in (("pen", TWO, "2"), ("pencil", SEVEN, "7")):
        (root / sub).mkdir(parents=True)
        for k in range(3):
            draw([strokes], box=(120 + 10 * k, 60, 100, 180)).save(root / sub / f"{label}_{k}.png")
    Image.new("L", (60, 60), 255).save(root / "pen" / "2_blank.png")


def test_a_folder_of_labelled_images_is_read_as_predict_reads_it(tiny_checkpoint, tmp_path, capsys):
    labelled_folder(tmp_path / "imgs")
    rc, out, err = run(["--ckpt", tiny_checkpoint, tmp_path / "imgs", "--out", tmp_path / "ev", "--workers", 1],
                       capsys)
    assert rc == 0, err
    report = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert set(report["sets"]) == {"pen", "pencil"} and report["sets"]["pen"]["n"] == 4
    assert report["sets"]["pen"]["refused"] == 0.25 and report["refusals"][0]["path"].endswith("2_blank.png")
    reader = Reader.from_checkpoint(tiny_checkpoint)
    wrong = [str(p) for p in sorted((tmp_path / "imgs").rglob("*_[0-9].png"))
             if reader.read(p)["label"] != p.name[0]]
    assert sorted(m["path"] for m in report["misread"]) == wrong
    right = 6 - len(wrong)
    assert abs(sum(s["accuracy"] * s["n"] for s in report["sets"].values()) - right) < 1e-9
    assert (tmp_path / "ev" / "misread.png").is_file() == bool(wrong)


def test_a_csv_of_path_and_label(tiny_checkpoint, tmp_path, capsys):
    labelled_folder(tmp_path / "imgs")
    rows = ["path,label", "imgs/pen/2_0.png,2", "imgs/pencil/7_1.png,7"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    rc, out, err = run(["--ckpt", tiny_checkpoint, tmp_path / "labels.csv", "--out", tmp_path / "ev"], capsys)
    assert rc == 0, err
    assert json.loads((tmp_path / "ev" / "eval.json").read_text())["sets"]["labels.csv"]["n"] == 2


@pytest.mark.parametrize("args, words", [
    (["{imgs}/../bad"], "neither a folder of images nor a .csv"),
    (["{imgs}/odd"], "does not begin with a class name"),
    (["--users", "{imgs}"], "either --users or folders"),
    (["--users", "--kinds", "nope"], "unknown kind nope"),
    (["--rows"], "give it with --users"),
    (["--users", "--rows", "--kinds", "lined,european"], "european draws single ones and sevens"),
    (["data=nope"], "data=nope"),
])
def test_bad_input_is_one_line(args, words, tiny_checkpoint, tmp_path, capsys):
    labelled_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "odd").mkdir()
    draw([TWO]).save(tmp_path / "imgs" / "odd" / "two.png")
    rc, out, err = run(["--ckpt", tiny_checkpoint, *[a.format(imgs=tmp_path / "imgs") for a in args]], capsys)
    assert rc == 1 and words in err and len(err.strip().splitlines()) == 1, err


def test_an_evaluation_is_never_overwritten(tiny_checkpoint, tmp_path, capsys):
    labelled_folder(tmp_path / "imgs")
    args = ["--ckpt", tiny_checkpoint, tmp_path / "imgs", "--out", tmp_path / "ev"]
    assert run(args, capsys)[0] == 0
    before = (tmp_path / "ev" / "eval.json").read_text()
    rc, out, err = run(args, capsys)
    assert rc == 1 and "already holds an evaluation" in err and (tmp_path / "ev" / "eval.json").read_text() == before


@pytest.mark.slow
@needs_real_mnist
def test_users_benchmark_reports_each_kind_beside_the_raw_tensors(tiny_checkpoint, tmp_path, capsys):
    rc, out, err = run(["--ckpt", tiny_checkpoint, "--users", "--kinds", "tight,european,scan", "--per-kind", 6,
                        "--split", "val", f"data.root={SHARED_DATA}", "--out", tmp_path / "ev",
                        "--save", tmp_path / "imgs"], capsys)
    assert rc == 0, err
    sets = json.loads((tmp_path / "ev" / "eval.json").read_text())["sets"]
    assert list(sets) == ["tight", "european", "scan"] and all(s["n"] == 6 for s in sets.values())
    assert all(0 <= s["raw_accuracy"] <= 1 for s in sets.values())
    assert set(sets["european"]["per_class"]) <= {"1", "7"}
    saved = sorted(p.name[0] for p in (tmp_path / "imgs" / "european").iterdir())
    assert len(saved) == 6 and set(saved) <= {"1", "7"}
    assert {p.suffix for p in (tmp_path / "imgs" / "scan").iterdir()} <= {".tif", ".pnm"}  # named for their format
    # The saved images, read back as a folder, give the same figures.
    rc, out, err = run(["--ckpt", tiny_checkpoint, tmp_path / "imgs", "--out", tmp_path / "ev2"], capsys)
    again = json.loads((tmp_path / "ev2" / "eval.json").read_text())["sets"]
    assert {k: v["accuracy"] for k, v in again.items()} == {k: v["accuracy"] for k, v in sets.items()}


def test_rows_of_users_images_are_read_as_predict_multi_reads_them(tiny_checkpoint, tiny_root, tmp_path, capsys):
    rc, out, err = run(["--ckpt", tiny_checkpoint, "--users", "--rows", "--kinds", "lined,app_window", "--per-kind",
                        3, "--split", "val", f"data.root={tiny_root}", "data.val_size=100", "--out", tmp_path / "ev",
                        "--save", tmp_path / "imgs"], capsys)
    assert rc == 0, err
    sets = json.loads((tmp_path / "ev" / "eval.json").read_text())["sets"]
    assert list(sets) == ["lined", "app_window"] and all(s["rows"] == 3 for s in sets.values())
    for s in sets.values():  # rows read exactly; the characters of rows read with the right count
        assert 0 <= s["accuracy"] <= 1 - s["refused"] - s["miscounted"] + 1e-9 and 0 <= s["characters"] <= 1
        assert s["n"] == 4 * round(3 * (1 - s["refused"] - s["miscounted"]))
    names = sorted(p.stem for p in (tmp_path / "imgs" / "lined").iterdir())
    assert len(names) == 3 and all(len(n.split("_")[0]) == 4 for n in names)  # each named for its four digits
    assert "| lined | 3 |" in out and "read exactly" in out


@pytest.mark.slow
@needs_real_mnist
def test_rows_read_by_worker_processes_give_the_same_figures(monkeypatch):
    args = ([f"data.root={SHARED_DATA}"], ["lined", "blur", "app_window"], 25, "val", None)  # 75 rows: workers start
    alone = eval_rows(Reader.load(), *args)["sets"]
    started, get_context = [], multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context", lambda method: started.append(method) or get_context(method))
    assert eval_rows(Reader.load(), *args, workers=2, model=DEFAULT_MODEL)["sets"] == alone
    assert started == ["spawn"]


# The users' benchmark's bars, with the reader shipped with the package, on the first 50 test digits of each kind
# (50 ones and sevens for european), the held-out kinds too. The README's table has the full figures (500 a kind).
PER_KIND = 50


@pytest.fixture(scope="module")
def users_benchmark():
    return eval_users(Reader.load(), [f"data.root={SHARED_DATA}"], list(ALL_KINDS), PER_KIND, "test", 2,
                      None)["sets"]


# Kinds under the bar (those kept aside: at their first measurement): open work, not hidden (README). Strict: a fix that
# lifts one over the bar fails here until its mark goes.
UNDER_THE_BAR = {
    "circled_pencil": "an open ring that touches the pencil digit is not cut away",
    "skipping_pen": "gaps make another digit (a 6's loop left open); far fragments and long straight ones are lost",
    "sudoku_cell": "a grid photographed with its lines broken, or a bold line lost to the paper: the rest stay, and a "
                   "neighbour's printed digit with them",
}


@pytest.mark.slow
@needs_real_mnist  # (before its fixture runs)
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=UNDER_THE_BAR[k]))
                                  if k in UNDER_THE_BAR else k for k in ALL_KINDS])
def test_each_kind_of_peoples_image_reads_about_as_well_as_the_raw_digits(kind, users_benchmark):
    s = users_benchmark[kind]
    assert s["n"] == PER_KIND and s["refused"] == 0, s
    # At most two of the 50 more wrong than on the raw 28x28 tensors of the same digits.
    assert s["accuracy"] >= s["raw_accuracy"] - 2 / PER_KIND - 1e-9, s


# The same kinds drawn as rows of four test digits (all but european), read as `predict --multi` reads them: the first
# 20 rows of each, with the shipped reader. The README has the full figures (200 rows a kind).
PER_KIND_ROWS = 20


@pytest.fixture(scope="module")
def rows_benchmark():
    kinds = [k for k in ALL_KINDS if k != "european"]
    return eval_rows(Reader.load(), [f"data.root={SHARED_DATA}"], kinds, PER_KIND_ROWS, "test", None, workers=2,
                     model=DEFAULT_MODEL)["sets"]


# Under the bar as rows (README, "How well it reads people's images"): open work. Strict, as above.
ROWS_UNDER_THE_BAR = {
    "small8": "rows 8 px high: digits misread (83.0% of 200 rows exact, 97.4% of their characters read right)",
    "skipping_pen": "a pen that skips: a digit left in pieces each read surely alone, or too little of it left (40.0% "
                    "of 200 rows exact)",
    "sudoku_cell": "a row of a sudoku cropped: its neighbours' printed digits, cut at the crop's ends, are read as "
                   "characters (68.5% of 200 rows exact)",
}


@pytest.mark.slow
@needs_real_mnist
@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=ROWS_UNDER_THE_BAR[k]))
                                  if k in ROWS_UNDER_THE_BAR else k for k in ALL_KINDS if k != "european"])
def test_each_kind_of_peoples_image_reads_as_rows_about_as_well_as_plain_rows(kind, rows_benchmark):
    s = rows_benchmark[kind]
    # At most three of the 20 rows misread (rows on plain paper: 97.4% exact, tests/user_images.py).
    assert s["rows"] == PER_KIND_ROWS and s["accuracy"] >= 1 - 3 / PER_KIND_ROWS - 1e-9, s
