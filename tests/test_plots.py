"""The report's pictures, read from the figure objects: what is on each axis, what the legend names, and the
target's curve beside the branch's."""

from __future__ import annotations

import json

import pytest
from conftest import git, run_alops

from alops.report import plots

TRAINING = {"stages": {"train": {"cmd": "python train.py", "plots": [{"plots/train.json": {"cache": False}}]}}}


def write_curve(root, losses):
    (root / "plots").mkdir(parents=True, exist_ok=True)
    rows = [{"epoch": epoch, "loss": loss} for epoch, loss in enumerate(losses, start=1)]
    (root / "plots/train.json").write_text(json.dumps({"train": rows}))


def test_a_training_curve_is_drawn_over_its_epochs_beside_the_targets(tmp_path):
    branch, target = tmp_path / "branch", tmp_path / "target"
    write_curve(branch, [0.9, 0.5, 0.3, 0.2])
    write_curve(target, [1.0, 0.7, 0.5, 0.4])
    [(title, figure)] = plots.figures(TRAINING, str(branch), str(target), ("experiment/wide", "main"))
    axes = figure.axes[0]
    assert axes.get_xlabel() == "epoch" and axes.get_ylabel() == "loss"  # epoch is the x axis, not a series
    assert axes.get_title() == "plots/train.json: experiment/wide vs main"
    assert [text.get_text() for text in axes.get_legend().get_texts()] == ["loss (experiment/wide)", "loss (main)"]
    mine, theirs = axes.get_lines()
    assert list(mine.get_xdata()) == [1, 2, 3, 4] and list(mine.get_ydata()) == [0.9, 0.5, 0.3, 0.2]
    assert list(theirs.get_ydata()) == [1.0, 0.7, 0.5, 0.4] and theirs.get_linestyle() == "--"

    [(_, alone)] = plots.figures(TRAINING, str(branch))  # no target files: the branch alone, named by its field
    assert [text.get_text() for text in alone.axes[0].get_legend().get_texts()] == ["loss"]
    assert alone.axes[0].get_title() == "plots/train.json"


def test_confusion_matrices_stay_one_per_file_with_plain_axis_names(tmp_path):
    (tmp_path / "cm").mkdir()
    pairs = {"train": [("a", "a")] * 5 + [("a", "b")], "test": [("b", "b"), ("b", "a"), ("a", "a")]}
    for name, rows in pairs.items():
        (tmp_path / f"cm/{name}.json").write_text(json.dumps([{"actual": a, "predicted": p} for a, p in rows]))
    document = {"plots": [{"Confusion": {"template": "confusion", "x": "actual",
                                         "y": {"cm/train.json": "predicted", "cm/test.json": "predicted"}}}]}
    drawn = plots.figures(document, str(tmp_path), names=("experiment/x", "main"))
    assert [title for title, _ in drawn] == ["Confusion: cm/train.json", "Confusion: cm/test.json"]
    for (_, figure), rows in zip(drawn, pairs.values()):
        axes = figure.axes[0]
        assert axes.get_xlabel() == "predicted" and axes.get_ylabel() == "actual"
        assert sum(int(text.get_text()) for text in axes.texts) == len(rows)  # not summed over the files
        assert figure.axes[1].get_ylabel() == "samples"  # the colour bar says what the colour counts


def test_the_report_draws_the_targets_committed_curve_beside_the_branchs(repo):
    """Without tracking, the target's curve comes from its commit (plots are committed with cache: false)."""
    from conftest import dvc

    dvc(repo, "init", "-q")
    (repo / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n    params: [dataset]\n"
                                   "    metrics:\n      - metrics.json:\n          cache: false\n"
                                   "    plots:\n      - plots/train.json:\n          cache: false\n")
    (repo / "params.yaml").write_text("dataset: dev\n")
    (repo / "metrics.json").write_text('{"accuracy": 0.90}')
    write_curve(repo, [1.0, 0.7, 0.5])
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "main's run")
    git(repo, "switch", "-q", "-c", "feature/lr")
    (repo / "metrics.json").write_text('{"accuracy": 0.93}')
    write_curve(repo, [0.8, 0.4, 0.2])
    result = run_alops("report", "--target", "main", "--out", "report/report.md", cwd=repo)
    assert result.returncode == 0, result.stderr
    picture = repo / "report/plot-plots-train.json.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![plot-plots-train.json.png](plot-plots-train.json.png)" in (repo / "report/report.md").read_text()


def test_on_github_the_plots_are_one_link_to_the_jobs_artifacts(tmp_path):
    """GitHub takes no image uploads: one link to the job's artifacts, not one per picture to the same page."""
    from alops.report import merge_request as report

    class NoUploads:
        def upload_image(self, path):
            return None

    names = ["plot-ROC.png", "plot-Confusion-cm-train.json.png", "plot-plots-train.json.png"]
    images = report._uploaded(NoUploads(), [str(tmp_path / name) for name in names], "https://github.com/t/p/actions/runs/1")
    built = report.Report("experiment/x", "main", "experiment", report.Side("workspace", {"acc": 0.9}), None, plots=names)
    body = report.render(built, images)
    assert body.count("](https://github.com/t/p/actions/runs/1)") == 1
    assert "<details><summary>Plots (3)</summary>" in body


def test_the_learning_curve_keeps_the_simulation_off_the_branchs_axes(tmp_path):
    """The simulation trains its own model over its own range of labels: its strategies get a panel of their own,
    the branch's strategy beside random with their spread over the seeds, never on the branch's axes."""
    from alops.report import merge_request as report

    simulation = tmp_path / "simulation.csv"
    rows = ["strategy,seed,round,labels,accuracy"]
    for seed, shift in ((0, 0.0), (1, 0.02), (2, -0.02)):
        for number, labels in enumerate((20, 120, 220)):
            rows += [f"random,{seed},{number},{labels},{0.5 + 0.1 * number + shift}",
                     f"margin,{seed},{number},{labels},{0.5 + 0.15 * number + shift}",
                     f"entropy,{seed},{number},{labels},{0.5 + 0.12 * number}"]
    simulation.write_text("\n".join(rows) + "\n")
    curves, seeds = report.simulation_curves(str(simulation), "margin")
    assert seeds == 3 and sorted(curves) == ["margin", "random"]  # the branch's strategy and random, not entropy
    built = report.Report("al/round-3", "main", "active-learning", report.Side("workspace", {"val_accuracy": 0.95}),
                          None, curve=[(1163, 0.93), (1243, 0.94), (1343, 0.95)], curve_metric="val_accuracy",
                          simulation=curves, simulation_seeds=seeds, strategy="margin")
    figure = report.learning_curve_figure(built)
    branch, simulated = figure.axes
    assert [line.get_label() for line in branch.get_lines()] == ["al/round-3 (margin)"]
    assert min(branch.get_lines()[0].get_xdata()) == 1163  # the branch's range alone on its axes
    assert branch.get_xlabel() == "labeled samples" and branch.get_ylabel() == "val_accuracy"
    assert [text.get_text() for text in simulated.get_legend().get_texts()] == ["margin", "random"]
    assert simulated.get_title() == "alops simulate: mean of 3 seed(s), ± 1 sd shaded"
    assert len(simulated.collections) == 2  # a spread band per strategy
    assert simulated.get_ylabel() == "accuracy"
    report.learning_curve_png(built, str(tmp_path / "learning_curve.png"))


def test_a_branch_over_seeds_is_its_mean_with_the_spread_as_a_band(tmp_path):
    """`alops run --seeds 3` keeps each seed's plot files: the branch's curve is their mean, ± 1 sd shaded, beside
    the target's dashed curve; seeds whose epochs differ fall back to the last seed's line."""
    import numpy as np

    branch, target = tmp_path / "branch", tmp_path / "target"
    seeds = [[0.9, 0.5, 0.3], [0.8, 0.6, 0.2], [1.0, 0.4, 0.4]]
    roots = []
    for number, losses in enumerate(seeds):
        write_curve(tmp_path / "seeds" / str(number), losses)
        roots.append(str(tmp_path / "seeds" / str(number)))
    write_curve(branch, seeds[0])
    write_curve(target, [1.0, 0.7, 0.6])
    [(_, figure)] = plots.figures(TRAINING, str(branch), str(target), ("experiment/wide", "main"), roots)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "loss (experiment/wide), mean of 3 seeds ± 1 sd", "loss (main)"]
    mean, theirs = axes.get_lines()
    assert list(mean.get_ydata()) == pytest.approx([0.9, 0.5, 0.3])
    [band] = axes.collections  # the shaded spread
    lows = band.get_paths()[0].vertices[:, 1]
    assert lows.min() == pytest.approx(min(np.mean(s) - np.std(s, ddof=1) for s in zip(*seeds)))
    assert axes.get_xlabel() == "epoch" and axes.get_ylabel() == "loss"
    figure.savefig(tmp_path / "band.png")

    write_curve(tmp_path / "seeds" / "2", [1.0, 0.4])  # one seed stopped early: no band, the workspace's line
    [(_, plain)] = plots.figures(TRAINING, str(branch), None, ("experiment/wide", "main"), roots)
    assert not plain.axes[0].collections and [t.get_text() for t in plain.axes[0].get_legend().get_texts()] == ["loss"]


def test_a_target_over_seeds_is_its_mean_dashed_with_its_own_band(tmp_path):
    """The baseline tracked with `alops baseline --seeds 3`: the target's curve is its seeds' mean, dashed, with a
    band of its own beside the branch's."""
    branch, target = tmp_path / "branch", tmp_path / "target"
    write_curve(branch, [0.9, 0.5, 0.3])
    write_curve(target, [1.0, 0.7, 0.6])
    target_seeds = []
    for number, losses in enumerate([[1.0, 0.7, 0.6], [1.2, 0.9, 0.7], [1.1, 0.8, 0.8]]):
        write_curve(tmp_path / "target-seeds" / str(number), losses)
        target_seeds.append(str(tmp_path / "target-seeds" / str(number)))
    [(_, figure)] = plots.figures(TRAINING, str(branch), str(target), ("experiment/wide", "main"), [], target_seeds)
    axes = figure.axes[0]
    assert [t.get_text() for t in axes.get_legend().get_texts()] == [
        "loss (experiment/wide)", "loss (main), mean of 3 seeds ± 1 sd"]
    mine, theirs = axes.get_lines()
    assert theirs.get_linestyle() == "--" and list(theirs.get_ydata()) == pytest.approx([1.1, 0.8, 0.7])
    from matplotlib.colors import to_rgb

    [band] = axes.collections  # the target's spread, in the target's colour
    assert tuple(band.get_facecolor()[0][:3]) == pytest.approx(to_rgb(theirs.get_color()))
