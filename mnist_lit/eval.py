"""Measure a model: python -m mnist_lit.eval [--ckpt PATH] [FOLDER_OR_CSV... | --users] [key=value ...].

Three sources, one report (accuracy, refusals, per-class accuracy, a confusion matrix PNG, eval.json):
- no images named: a dataset's test split, as the config composes it (`data=emnist_digits data.root=DIR`);
- folders of labelled images (the label is the file name's first character, `3_photo.jpg`; subfolders are
  reported apart) or CSV files of `path,label` rows, read as `mnist_lit.predict` reads them;
- --users: MNIST test digits redrawn as people's images of many kinds (mnist_lit.userimages), each kind
  beside the accuracy on the same digits as raw 28x28 tensors; with --rows, rows of four digits read as
  `predict --multi` reads them.
"""
import argparse
import csv
import io
import json
import multiprocessing
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_lit.predict import DEFAULT_MODEL, ModelError, Reader, ReadError
from mnist_lit.preprocess import IMAGE_SUFFIXES, preprocess
from mnist_lit.userimages import ALL_KINDS, HELD_OUT, KINDS, render, row_spans

CONF = Path(__file__).resolve().parent.parent / "conf"


class EvalError(ValueError):
    """The evaluation cannot start; the one-line message says why and what to do."""


def _compose(overrides: list):
    """The training config (conf/train.yaml) with these overrides, as python -m mnist_lit.train composes it."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name="train", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise EvalError(f"{' '.join(overrides)}: {str(e).splitlines()[0]}") from None


def dataset_split(overrides: list, split="test"):
    """(images uint8 (N, 28, 28), labels, class names, dataset name) of a split, as the training config loads it."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from mnist_lit.data import DataError

    cfg = _compose(overrides)
    try:
        dm = instantiate(cfg.data, _recursive_=False)
        dm.prepare_data()
        dm.setup()
    except (DataError, InstantiationException) as e:
        cause = e.__cause__ if isinstance(e.__cause__, DataError) else e
        raise EvalError(str(cause).splitlines()[0]) from None
    x, y = dm.splits[split]
    return x.numpy(), y.numpy(), dm.classes, cfg.data.name


def _labelled_files(args: list, classes: list) -> list[tuple[str, str, str]]:
    """Folders and CSV files -> [(path, label, group)]; group is the subfolder (or CSV) the file came from."""
    out = []
    for a in args:
        p = Path(a)
        if p.suffix.lower() == ".csv" and p.is_file():
            with open(p, newline="") as f:
                rows = [r for r in csv.reader(f) if r and not r[0].startswith("#")]
            if rows and rows[0][:2] == ["path", "label"]:
                rows = rows[1:]
            for r in rows:
                if len(r) < 2:
                    raise EvalError(f"{p}: the row {','.join(r)!r} is not path,label: write one image per row")
                out.append((str(p.parent / r[0]), r[1].strip(), p.name))
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise EvalError(f"folder {p} holds no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images")
            for f in files:
                label = next((c for c in sorted(classes, key=len, reverse=True) if f.name.startswith(c)), None)
                if label is None:
                    raise EvalError(f"{f}: its name does not begin with a class name ({''.join(classes)}): name "
                                    f"each image after its label, e.g. 3_photo.png, or list them in a CSV of "
                                    f"path,label")
                out.append((str(f), label, str(f.parent.relative_to(p)) if f.parent != p else p.name))
        else:
            raise EvalError(f"{a} is neither a folder of images nor a .csv of path,label: give one of those")
    unknown = sorted({label for _, label, _ in out} - set(classes))
    if unknown:
        raise EvalError(f"labels {', '.join(unknown)} are not among the model's classes ({', '.join(classes)}): "
                        f"evaluate with a model trained on them")
    return out


def _preprocess_one(job):
    """(source, framing) -> the 28x28 image, or the ReadError's message (in a worker process)."""
    source, framing = job
    if isinstance(source, tuple):  # (kind, digit, label, seed): draw it first
        source = render(*source)
    try:
        return preprocess(source, framing)
    except ReadError as e:
        return str(e)


def _preprocess_all(sources: list, framing: str, workers: int) -> list:
    jobs = [(s, framing) for s in sources]
    if workers <= 1 or len(jobs) < 64:
        return [_preprocess_one(j) for j in jobs]
    # spawn: the workers never inherit torch's thread pools
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        return pool.map(_preprocess_one, jobs, chunksize=16)


def tally(truth: list, predicted: list, classes: list) -> dict:
    """Accuracy, refusals (predicted None), per-class accuracy and the confusion matrix (last column: refused)."""
    index = {c: i for i, c in enumerate(classes)}
    n = len(classes)
    confusion = np.zeros((n, n + 1), np.int64)
    for t, p in zip(truth, predicted):
        confusion[index[t], n if p is None else index[p]] += 1
    total, correct = confusion.sum(1), np.diag(confusion[:, :n])
    present = total > 0
    return {
        "n": int(total.sum()),
        "accuracy": float(correct.sum() / max(1, total.sum())),
        "refused": float(confusion[:, n].sum() / max(1, total.sum())),
        "per_class": {c: {"accuracy": float(correct[i] / total[i]), "correct": int(correct[i]),
                          "total": int(total[i])} for i, c in enumerate(classes) if present[i]},
        "confusion": confusion.tolist(),  # rows: true class; columns: predicted class, then refused
    }


def _labels(reader: Reader, images: list, batch=512) -> list:
    """The top label of each 28x28 image (None for a refusal message)."""
    out = [None] * len(images)
    ok = [i for i, im in enumerate(images) if not isinstance(im, str)]
    for s in range(0, len(ok), batch):
        part = ok[s:s + batch]
        for i, r in zip(part, reader.classify([images[i] for i in part], topk=1)):
            out[i] = r["label"]
    return out


def eval_dataset(reader: Reader, overrides: list) -> dict:
    x, y, classes, name = dataset_split(overrides)
    missing = sorted(set(classes) - set(reader.classes))
    if missing:
        raise EvalError(f"the model reads {', '.join(reader.classes)} but {name} has classes {', '.join(missing)} "
                        f"too: evaluate a model trained on {name}")
    predicted = _labels(reader, list(x.astype(np.float32) / 255))
    truth = [classes[int(t)] for t in y]
    return {"source": f"{name} test split", "sets": {name: tally(truth, predicted, reader.classes)}}


def eval_images(reader: Reader, args: list, workers: int) -> dict:
    files = _labelled_files(args, reader.classes)
    images = _preprocess_all([f for f, _, _ in files], reader.framing, workers)
    predicted = _labels(reader, images)
    sets = {}
    for group in dict.fromkeys(g for _, _, g in files):
        idx = [i for i, (_, _, g) in enumerate(files) if g == group]
        sets[group] = tally([files[i][1] for i in idx], [predicted[i] for i in idx], reader.classes)
    refusals = [{"path": f, "error": im} for (f, _, _), im in zip(files, images) if isinstance(im, str)]
    wrong = [{"path": f, "label": t, "read": p} for (f, t, _), p in zip(files, predicted) if p not in (None, t)]
    seen = [(p, t, im) for (_, t, _), p, im in zip(files, predicted, images) if p != t]
    return {"source": " ".join(args), "sets": sets, "refusals": refusals, "misread": wrong, "misread_images": seen}


def _mnist_split(overrides: list, split: str):
    """dataset_split's images, labels and class names, for MNIST only (the users' kinds draw MNIST digits)."""
    x, y, classes, name = dataset_split(overrides, split)
    if name != "mnist":
        raise EvalError(f"--users draws MNIST digits, not {name}: leave data= at its default")
    return x, y, classes


def eval_users(reader: Reader, overrides: list, kinds: list, per_kind: int, split: str, workers: int,
               save: Path | None) -> dict:
    """Each kind of people's image, drawn from the first per_kind digits of MNIST's split (never training ones)."""
    x, y, classes = _mnist_split(overrides, split)
    jobs, owners = [], []
    for kind in kinds:
        wanted = getattr(ALL_KINDS[kind], "labels", None)  # e.g. european: ones and sevens only
        idx = [i for i in range(len(x)) if wanted is None or int(y[i]) in wanted][:per_kind]
        jobs += [(kind, x[i], int(y[i]), i) for i in idx]
        owners += [(kind, i) for i in idx]
    if save:
        for kind, digit, label, i in jobs:
            _save_file(save / kind, f"{classes[label]}_{split}{i:05d}", render(kind, digit, label, i))
    images = _preprocess_all(jobs, reader.framing, workers)
    predicted = _labels(reader, images)
    raw_pred = _labels(reader, list(x.astype(np.float32) / 255))
    sets = {}
    for kind in kinds:
        idx = [k for k, (kd, _) in enumerate(owners) if kd == kind]
        digits = [owners[k][1] for k in idx]
        truth = [classes[int(y[i])] for i in digits]
        sets[kind] = tally(truth, [predicted[k] for k in idx], reader.classes)
        sets[kind]["raw_accuracy"] = float(np.mean([raw_pred[i] == t for i, t in zip(digits, truth)]))
    truth = [classes[int(y[i])] for _, i in owners]
    misread = [(p, t, im) for p, t, im in zip(predicted, truth, images) if p != t]
    return {"source": f"people's images of MNIST {split} digits", "sets": sets, "misread_images": misread}


def _save_file(folder: Path, stem: str, data: bytes):
    with Image.open(io.BytesIO(data)) as im:  # each file named for its format, as a person's would be
        ext = {"JPEG": "jpg", "TIFF": "tif", "PPM": "pnm", "HEIF": "heic"}.get(im.format, im.format.lower())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.{ext}").write_bytes(data)


ROW = 4  # digits in each row of --rows


_worker_reader = None


def _load_reader(model: Path):
    global _worker_reader
    _worker_reader = Reader.load(model)
    if "torch" in sys.modules:  # one thread a process: the processes share the cores
        sys.modules["torch"].set_num_threads(1)


def _read_row(job, reader=None):
    """(kind, digits, k, keep) -> (the drawn file if keep, read_multi's result or None when refused), in a worker
    process or not."""
    kind, digits, k, keep = job
    image, spans = row_spans(digits, np.random.default_rng([k, ROW]))
    data = render(kind, image, None, k, spans)
    try:
        return keep and data, (reader or _worker_reader).read_multi(data, topk=1)
    except ReadError:
        return keep and data, None


def eval_rows(reader: Reader, overrides: list, kinds: list, per_kind: int, split: str, save: Path | None,
              workers: int = 1, model: Path | None = None) -> dict:
    """Each kind drawn as rows of four digits of MNIST's split (2-6 of their pixels apart), read by read_multi:
    the rows read exactly, and a confusion matrix of the characters of rows read with the right count. With workers
    > 1 and the reader's model file, that many processes read the rows, each loading its own copy of it."""
    x, y, classes = _mnist_split(overrides, split)
    per_kind = min(per_kind, len(x) // ROW)
    rows = range(per_kind)  # row k: digits 4k..4k+3, the same in every kind
    jobs = [(kind, x[ROW * k:ROW * k + ROW], k, bool(save)) for kind in kinds for k in rows]
    if workers <= 1 or model is None or len(jobs) < 64:
        done = [_read_row(j, reader) for j in jobs]
    else:
        with multiprocessing.get_context("spawn").Pool(workers, _load_reader, (model,)) as pool:
            done = pool.map(_read_row, jobs, chunksize=8)
    truths = ["".join(classes[int(c)] for c in y[ROW * k:ROW * k + ROW]) for k in rows]
    sets, misread = {}, []
    for n, kind in enumerate(kinds):
        read = done[n * per_kind:(n + 1) * per_kind]
        texts = [text for _, text in read]
        if save:
            for k, (data, _) in zip(rows, read):
                _save_file(save / kind, f"{truths[k]}_{split}{k:05d}", data)
        counted = [(r, t) for r, t in zip(texts, truths) if r and len(r["chars"]) == len(t)]
        chars = [(c["label"], t, c["image"]) for r, text in counted for c, t in zip(r["chars"], text)]
        s = sets[kind] = tally([t for _, t, _ in chars], [p for p, _, _ in chars], reader.classes)
        misread += [c for c in chars if c[0] != c[1]]
        exact = [r is not None and r["text"] == t for r, t in zip(texts, truths)]
        miscounted = [r is not None and len(r["chars"]) != len(t) for r, t in zip(texts, truths)]
        s.update(characters=s["accuracy"], rows=per_kind, accuracy=float(np.mean(exact)),
                 refused=float(np.mean([r is None for r in texts])), miscounted=float(np.mean(miscounted)))
    return {"source": f"people's images of rows of {ROW} MNIST {split} digits", "sets": sets,
            "misread_images": misread}


def _table(result: dict) -> str:
    if any("rows" in s for s in result["sets"].values()):
        lines = ["| kind | rows | read exactly | refused | wrong count | characters read right |",
                 "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {s['rows']} | {s['accuracy']:.1%} | {s['refused']:.1%} | {s['miscounted']:.1%} | "
                  f"{s['characters']:.2%} |"
                  for name, s in result["sets"].items()]
        return "\n".join(lines)
    users = any("raw_accuracy" in s for s in result["sets"].values())
    head = "| set | images | read right | refused |" + (" raw 28x28 tensors |" if users else "")
    lines = [head, "|---|---|---|---|" + ("---|" if users else "")]
    for name, s in result["sets"].items():
        line = f"| {name} | {s['n']} | {s['accuracy']:.2%} | {s['refused']:.2%} |"
        lines.append(line + (f" {s['raw_accuracy']:.2%} |" if users else ""))
    return "\n".join(lines)


def _per_class(s: dict) -> str:
    return "  ".join(f"{c} {v['accuracy']:.1%}" for c, v in s["per_class"].items())


def _out_dir(out: Path | None) -> Path:
    """--out, or a new folder outputs/eval/<date>/<time>[_n]; an existing eval.json is never replaced."""
    if out is None:
        base = Path("outputs") / "eval" / f"{datetime.now():%Y-%m-%d}" / f"{datetime.now():%H-%M-%S}"
        out, n = base, 0
        while out.exists():
            n += 1
            out = base.with_name(f"{base.name}_{n}")
    if (out / "eval.json").exists():
        raise EvalError(f"{out} already holds an evaluation (eval.json): choose another --out")
    return out  # made once there is something to write in it


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mnist_lit.eval", description="Measure a model on a dataset's test split, on folders of "
        "labelled images, or on MNIST test digits drawn as people's images (--users).")
    parser.add_argument("--ckpt", "--model", dest="model", type=Path, metavar="PATH", default=DEFAULT_MODEL,
                        help="a .ckpt written by mnist_lit.train, or an exported .onnx/.pt (default: the reader "
                             "shipped with mnist_lit)")
    parser.add_argument("sources", nargs="*", metavar="FOLDER_OR_CSV | key=value",
                        help="folders of images named <label>..., CSV files of path,label, and config overrides "
                             "such as data=emnist_digits data.root=DIR")
    parser.add_argument("--users", action="store_true", help="MNIST digits drawn as people's images, by kind")
    parser.add_argument("--kinds", default="all", help="with --users: all, held-out, or a comma-separated list")
    parser.add_argument("--per-kind", type=int, default=500,
                        help="with --users: digits (with --rows: rows) per kind (default 500)")
    parser.add_argument("--rows", action="store_true", help="with --users: rows of four digits, read as "
                        "predict --multi reads them; each kind but european")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="with --users: the digits' split (val: the training file's validation part)")
    parser.add_argument("--save", type=Path, metavar="DIR", help="with --users: also write the images to "
                        "DIR/<kind>/<label>_<split><index>.<ext>")
    parser.add_argument("--workers", type=int, default=min(4, multiprocessing.cpu_count()),
                        help="processes that prepare images (with --rows: that read the rows)")
    parser.add_argument("--out", type=Path, help="folder for eval.json and the PNGs "
                        "(default: a new outputs/eval/<date>/<time>)")
    args = parser.parse_args(argv)
    overrides = [s for s in args.sources if "=" in s]
    paths = [s for s in args.sources if "=" not in s]
    try:
        if args.users and paths:
            raise EvalError("--users draws its own images: give either --users or folders, not both")
        if args.rows and not args.users:
            raise EvalError("--rows draws rows of people's images: give it with --users")
        if args.users:
            names = {"all": list(KINDS), "held-out": list(HELD_OUT)}.get(args.kinds) or args.kinds.split(",")
            bad = [k for k in names if k not in ALL_KINDS]
            if bad:
                raise EvalError(f"unknown kind {', '.join(bad)}: use all, held-out, or some of "
                                f"{', '.join(ALL_KINDS)}")
            if args.rows and "european" in names:
                if args.kinds != "all":
                    raise EvalError("european draws single ones and sevens, not rows: leave it out of --kinds")
                names.remove("european")
            if args.per_kind < 1:
                raise EvalError(f"--per-kind {args.per_kind}: give 1 or more")
        out = _out_dir(args.out)
        reader = Reader.load(args.model)
        start = time.perf_counter()
        if args.rows:
            result = eval_rows(reader, overrides, names, args.per_kind, args.split, args.save, args.workers,
                               args.model)
        elif args.users:
            result = eval_users(reader, overrides, names, args.per_kind, args.split, args.workers, args.save)
        elif paths:
            result = eval_images(reader, paths, args.workers)
        else:
            result = eval_dataset(reader, overrides)
        seconds = time.perf_counter() - start
    except (EvalError, ModelError, ReadError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ImportError as e:
        print(f"error: reading {args.model} needs {e.name}: pip install 'mnist_lit[export]'", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    from mnist_lit.report import draw_confusion, draw_misclassified

    misread = result.pop("misread_images", [])
    total = np.sum([s["confusion"] for s in result["sets"].values()], 0)
    draw_confusion(total, reader.classes, columns=[*reader.classes, "refused"]).save(out / "confusion_matrix.png")
    seen = [(np.round(im * 255).astype(np.uint8), reader.classes.index(p), reader.classes.index(t))
            for p, t, im in misread if p is not None][:64]
    if seen:  # what the model saw when it erred: the first place to look
        draw_misclassified(seen, reader.classes).save(out / "misread.png")
    report = {"model": str(args.model), "info": reader.info, **result,
              "seconds": round(seconds, 1)}
    (out / "eval.json").write_text(json.dumps(report, indent=1) + "\n")
    print(_table(result))
    if len(result["sets"]) == 1:
        print("per class: " + _per_class(next(iter(result["sets"].values()))))
    print(f"wrote {out / 'eval.json'} and {out / 'confusion_matrix.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
