"""The benchmark runs end to end on tiny data and writes well-formed JSON (no speed is asserted)."""
import json

import pytest

from mnist_lit import bench


@pytest.mark.slow
def test_bench_runs_all_three_pipelines_and_writes_json(tiny_root, tmp_path, capsys):
    out = tmp_path / "bench"
    report = bench.main(["--data-root", str(tiny_root), "--repeats", "1", "--target", "0.9", "--out", str(out),
                         "data.val_size=100", "model.hidden=[64]", "batch_size=50"])
    saved = json.loads((out / "bench.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["setup"]["train_images"] == 500 and saved["setup"]["batch_size"] == 50
    assert saved["setup"]["model"]["hidden"] == [64]

    pipes = saved["pipelines"]
    assert list(pipes) == ["real", "bare", "torchvision"]
    for p in pipes.values():
        assert len(p["epoch_seconds_all"]) == 1 and p["epoch_seconds"] > 0
        assert p["peak_rss_mb"] >= p["import_rss_mb"] > 0
    assert set(saved["ratios"]) >= {"real_over_bare", "torchvision_over_real"}
    aug = saved["augmentation"]  # each preset's cost beside a training step of the benchmarked network
    assert aug["batch_size"] == 50 and set(aug["fraction_of_step"]) == {"affine", "elastic"}
    assert all(aug["ms"][k] > 0 for k in ("step", "affine", "elastic"))
    assert aug["fraction_of_step"]["elastic"] == round(aug["ms"]["elastic"] / aug["ms"]["step"], 4)

    # The default config (not the benchmark's model or batch size) trains until the target, then stops.
    t = saved["time_to_target"]
    assert t["reached"] and t["val_acc"] >= 0.9 and 1 <= t["epoch"] == len(t["epoch_seconds"]) < 15
    assert t["seconds"] > 0 and "data.val_size=100" in t["overrides"]
    assert sorted(p.name for p in (out / "runs").iterdir() if p.is_dir()) == []  # checkpoints are not kept

    printed = capsys.readouterr().out
    assert "(a)/(b) time" in printed and "(c)/(a) time" in printed and str(out / "bench.json") in printed
    assert "augmentation of a batch of 50: affine" in printed


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["schedule=onecycle"], ["schedule=cosine", "data.augment=affine", "dropout=0.3"]])
def test_the_bare_loop_trains_exactly_what_the_real_path_trains(tiny_root, tmp_path, extra):
    # The floor shares the real path's batches, augmentation, initial weights, optimizer and schedule: one epoch of
    # each ends at the same validation accuracy (and so cannot drift from what it is the floor of).
    from mnist_lit.train import train
    from tests.conftest import FAST

    common = [f"data.root={tiny_root}", "data.val_size=100", "model.hidden=[64]", "batch_size=50", "epochs=1",
              "lr=2e-4", "trainer=cpu", *extra]
    bare = bench.run_bare(common)
    real = train(bench.compose([*common, f"run_dir={tmp_path}", "~logger", *FAST]))
    assert 0.2 < bare["val_acc"] < 1.0  # a value that tells runs apart
    assert bare["val_acc"] == pytest.approx(real["val/acc_best"], abs=1e-6)


def test_summary_takes_medians_over_repeats_and_epochs():
    runs = lambda *times: [{"epoch_seconds": list(t), "epoch_cpu_seconds": list(t), "peak_rss_mb": 9,  # noqa: E731
                            "import_rss_mb": 5} for t in times]
    summary, ratios = bench.summarise({"real": runs([10, 30], [11]), "bare": runs([10], [9], [50]),
                                       "torchvision": runs([33])}, n_train=1100)
    assert summary["real"]["epoch_seconds"] == 11 and summary["bare"]["epoch_seconds"] == 10
    assert summary["real"]["samples_per_s"] == 100
    assert ratios == {"real_over_bare": 1.1, "real_over_bare_cpu": 1.1, "torchvision_over_real": 3.0,
                      "torchvision_over_real_cpu": 3.0}
    # The printed table shows each pipeline's median and the range of its epochs (a busy CPU shows as a wide one).
    report = {"pipelines": summary, "ratios": ratios, "augmentation": None, "time_to_target": None, "recipes": {},
              "load_average": {"start": [0.5], "end": [0.7]}, "machine": {"cores": 2}}
    rows = {line.split("  ")[0]: line.split() for line in bench.format_report(report).splitlines()}
    assert rows[bench.PIPELINES["real"]][-5:-3] == ["11.00", "10.00-30.00"]
    assert rows[bench.PIPELINES["bare"]][-5:-3] == ["10.00", "9.00-50.00"]
    # With as many repeats of each, the ratio of each repeat too: the machine's drift shows as their spread.
    summary, ratios = bench.summarise({"real": runs([11], [15]), "bare": runs([10], [10])}, n_train=1100)
    assert ratios["real_over_bare"] == 1.3 and ratios["real_over_bare_repeats"] == [1.1, 1.5]
    report.update(pipelines=summary, ratios=ratios)
    assert "(a)/(b) time: 1.30x (repeats 1.10-1.50)," in bench.format_report(report)


def test_bad_options_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--pipelines", "real,fast"])
    assert "unknown pipeline fast" in capsys.readouterr().err


def test_compile_callback_compiles_the_network_and_keeps_its_state_dict_keys():
    import torch

    from mnist_lit.callbacks import Compile
    from mnist_lit.module import LitClassifier

    graphs = []

    def backend(gm, example_inputs):  # records what dynamo hands the compiler, runs it uncompiled
        graphs.append(gm)
        return gm.forward

    model = LitClassifier(net={"_target_": "mnist_lit.models.MLP", "hidden": [16]}, classes=list("0123456789"))
    keys = list(model.state_dict())
    Compile(backend=backend).setup(None, model, "fit")
    assert model.net(torch.rand(4, 1, 28, 28)).shape == (4, 10)
    assert graphs and list(model.state_dict()) == keys  # checkpoints of a compiled run load into a plain model


@pytest.mark.slow
def test_recipes_report_accuracy_time_to_accuracy_and_flops(tiny_root, tmp_path, capsys):
    out = tmp_path / "bench"
    report = bench.main(["--data-root", str(tiny_root), "--pipelines", "bare", "--repeats", "1", "--target", "0",
                         "--recipes", "fast", "--seeds", "2", "--out", str(out), "data.val_size=100"])
    saved = json.loads((out / "bench.json").read_text())
    assert saved == json.loads(json.dumps(report))
    r = saved["recipes"]["fast"]
    assert (r["seeds"], r["epochs"], r["batch_size"], len(r["runs"])) == (2, 2, 256, 2)
    accs = [run["test_acc"] for run in r["runs"]]
    assert r["test_acc"][0] == pytest.approx(sum(accs) / 2, abs=1e-5)
    for run in r["runs"]:
        assert len(run["epoch_seconds"]) == len(run["val_acc_epochs"]) == 2 and run["train_images"] == 500
        # Time to an accuracy: the epochs' seconds up to the first that reached it.
        first = next((i for i, a in enumerate(run["val_acc_epochs"]) if a >= 0.5), None)
        assert bench.time_to(run, 0.5) == (None if first is None else round(sum(run["epoch_seconds"][:first + 1]), 2))
    # fast's multiply-adds by hand: 5x5 stem to 14x14x32, 3x3 convs at 7x7 (32->64) and 3x3 (64->128), linear.
    macs = 14 * 14 * 25 * 32 + 7 * 7 * 9 * 32 * 64 + 3 * 3 * 9 * 64 * 128 + 128 * 10
    assert r["train_flops_per_image"] == 3 * 2 * macs and r["train_flops_per_run"] == 3 * 2 * macs * 500 * 2
    assert saved["machine"]["matmul_peak_gflops"] > 0 and saved["machine"]["matmul_dtype"] == "float32"
    assert "fast" in capsys.readouterr().out


def test_pipelines_none_needs_recipes(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--pipelines", "none"])
    assert "nothing to run" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--recipes", "fastest"])
    assert "unknown recipe fastest" in capsys.readouterr().err
