"""`alops data`: datasets with DVC (pull/push for the branch, dev datasets, data version)."""

from __future__ import annotations

import os
import shlex

import click

from alops.commands.options import DATASET_OPTION, REMOTE_OPTION
from alops.core.errors import AlopsError, ConfigError
from alops.core.project import Project


@click.group()
def data() -> None:
    """Datasets with DVC: pull/push for the branch, dev datasets, data version."""


@data.command("pull")
@click.argument("paths", nargs=-1)
@DATASET_OPTION
@REMOTE_OPTION
@click.option("--allow-missing", is_flag=True, help="Skip files missing on the remote (never on experiment or release branches).")
@click.option("--manifest-only", is_flag=True, help="Only the dataset's manifest (e.g. to export a selection's tasks).")
def data_pull(paths: tuple[str, ...], dataset: str | None, remote: str | None, allow_missing: bool,
              manifest_only: bool) -> None:
    """Pull the dataset the branch needs: dev on feature and main, full on experiment, release and al/.

    With PATHS, pull those tracked files instead (pipeline outputs such as the pool; empty ones are skipped).
    The version pulled is the one the branch's .dvc / dvc.lock files record. A missing or corrupt
    object fails the command (remotes are read with verify = true).

    \b
    Examples:
      alops data pull                  # what this branch needs
      alops data pull --dataset full
      alops data pull --dataset full --manifest-only
      alops data pull pool_probs.npy pool_ids.txt
    """
    from alops.data import storage as dvc_data

    with Project.open() as project:
        context = project.context
        targets = [os.path.join(project.root, path) for path in paths if path]
        if targets:
            stats = dvc_data.pull(project, targets, remote=remote, allow_missing=allow_missing)
            click.echo(f"{', '.join(path for path in paths if path)}: {stats.get('fetched', 0)} files fetched, "
                       f"{len(stats.get('added', []))} added, {len(stats.get('modified', []))} modified")
            return
        dataset = dataset or project.dataset
        if allow_missing and context.kind in ("experiment", "release"):
            raise ConfigError(f"--allow-missing is refused on {context.kind} branches: their runs need every file")
        missing = dvc_data.untracked_dataset(project, dataset)
        if missing:
            raise ConfigError(missing)
        folder = project.manifest(dataset) if manifest_only else project.dataset_folder(dataset)
        relative = os.path.relpath(folder, project.root)
        click.echo(f"alops: pulling the {dataset} dataset ({relative}) for {context.kind} branch {context.branch!r}", err=True)
        stats = dvc_data.pull(project, [folder], remote=remote, allow_missing=allow_missing)
    click.echo(f"{relative}: {stats.get('fetched', 0)} files fetched, {len(stats.get('added', []))} added, "
               f"{len(stats.get('modified', []))} modified, {len(stats.get('deleted', []))} deleted")


@data.command("push")
@click.option("--dataset", type=click.Choice(["dev", "full", "all"]), help="Which dataset; default: the branch profile's; all: everything tracked.")
@REMOTE_OPTION
def data_push(dataset: str | None, remote: str | None) -> None:
    """Push the branch's dataset (or all tracked data) to the DVC remote."""
    from alops.data import storage as dvc_data

    with Project.open() as project:
        dataset = dataset or project.dataset
        targets = None if dataset == "all" else [project.dataset_folder(dataset)]
        count = dvc_data.push(project, targets, remote=remote)
    click.echo(f"{dataset}: {count} files pushed")


@data.command("version")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def data_version(fmt: str) -> None:
    """Print a stable identifier of the data the workspace's DVC files record (for tracking and releases)."""
    import json

    from alops.core.project import find_dvc_root
    from alops.data import storage as dvc_data

    version = dvc_data.data_version(find_dvc_root())
    click.echo(json.dumps(version, indent=2, sort_keys=True) if fmt == "json" else version["version"])


@data.command("make-dev")
@click.option("--fraction", type=float, help="Dev size as a share of the full data, in (0, 1].")
@click.option("--count", type=int, help="Dev size in samples.")
@click.option("--time-budget", type=float, metavar="SECONDS", help="Dev size from the time the pipeline may take...")
@click.option("--seconds-per-sample", type=float, help="...and its cost per sample (with --time-budget).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed and data, same dev dataset.")
@click.option("--z-outlier", type=float, default=4.0, show_default=True, help="Numeric values this many std devs from the mean are outliers.")
@click.option("--outlier-share", type=float, default=0.02, show_default=True, help="At most this share of the dev dataset is outliers and corrupt samples.")
@click.option("--report", "report_path", default="metrics/dev_fidelity.json", show_default=True, help="Fidelity report (a DVC metrics file).")
@click.option("--no-track", is_flag=True, help="Write the dev dataset without `dvc add`.")
@click.option("--like", "like_log", type=click.Path(dir_okay=False, exists=True),
              help="A live log whose class shares the labeled dev samples take (a detected shift mapped in).")
@click.option("--label-column", help="Class column of --like (e.g. prediction); default: the dataset's (label).")
@click.option("--remedy", "remedy_path", type=click.Path(dir_okay=False, exists=True),
              help="A drift verdict (check-dev --verdict): sample as its remedy says (its size; the log's class shares "
                   "when classes moved).")
@click.option("--commit", "record", is_flag=True,
              help="Record the new dev dataset as a data version (dvc push, git commit, git push): the CI job.")
@click.option("--branch", help="With --commit: the branch it is recorded on (a GitHub schedule runs on the default "
                               "branch and names its al/ branch); default: the CI branch.")
def data_make_dev(fraction, count, time_budget, seconds_per_sample, seed, z_outlier, outlier_share, report_path, no_track,
                  like_log, label_column, remedy_path, record, branch) -> None:
    """Sample the dev dataset from the full data, keep its strata, track it with DVC.

    Without a size option, a dev dataset that exists keeps its number of samples.
    Samples the manifest, or the row files data.rows names (CSV, Parquet, JSON Lines); keeps the shares of
    label x split (unlabeled samples included), always takes outliers and corrupt samples (up to
    --outlier-share), and writes a fidelity report. With data.dev_stage, runs that stage instead (no size
    options) and reports on what it wrote.

    \b
    Examples:
      alops data make-dev --fraction 0.05
      alops data make-dev --time-budget 300 --seconds-per-sample 0.02
      alops data make-dev --count 359 --like intake/new-samples.jsonl --label-column prediction
      alops data make-dev --remedy intake/drift.json --commit   # what a failed drift check asks for
    """
    from alops.data.devset import (
        DevSize,
        check_size,
        class_shares,
        commit_project_dev,
        current_dev_rows,
        make_project_dev,
    )
    from alops.report import drift_issue

    if remedy_path:
        if any((fraction, count, time_budget, like_log, label_column)):
            raise ConfigError("--remedy takes the size and the class shares from the verdict: drop --fraction, "
                              "--count, --time-budget, --like and --label-column")
        verdict = drift_issue.read(remedy_path)
        if verdict["representative"]:
            raise ConfigError(f"{remedy_path}: the dev dataset was representative: nothing to remedy")
        count, like_log, label_column = drift_issue.remedy_options(verdict)
    if branch and not record:
        raise ConfigError("--branch names where --commit records the dev dataset: give --commit too")
    size = DevSize(fraction, count, time_budget, seconds_per_sample)
    with Project.open(branch=branch) as project:
        stage = project.config.data.dev_stage
        if stage is None and size == DevSize():
            size = DevSize(count=current_dev_rows(project))  # the same size again
            if size.count is None:
                raise ConfigError("no dev dataset yet to keep the size of: give --fraction, --count or --time-budget")
        if stage is None:
            check_size(size)
        elif size != DevSize():
            raise ConfigError(f"data.dev_stage: the stage {stage!r} sizes the dev dataset; drop --fraction, --count "
                              "and --time-budget (or remove data.dev_stage from alops.yaml to let alops sample)")
        if like_log and stage is not None:
            raise ConfigError(f"--like maps a sampled dev dataset, and the stage {stage!r} makes this one: map the "
                              "class shares in that stage (or remove data.dev_stage from alops.yaml)")
        if label_column and not like_log:
            raise ConfigError("--label-column names the class column of --like: give --like LOG too")
        if record and no_track:
            raise ConfigError("--commit records the dev dataset with DVC: drop --no-track")
        like = class_shares(like_log, label_column or project.config.data.label) if like_log else None

        def make() -> dict:
            return make_project_dev(project, report_path, size, seed=seed, z_outlier=z_outlier,
                                    outlier_share=outlier_share, track=not no_track, like=like)

        report, commit = commit_project_dev(project, report_path, make) if record else (make(), None)
        dev = os.path.relpath(project.dataset_folder("dev"), project.root)
    if "dev_rows" not in report:
        click.echo(f"{dev}: made by stage {stage}: {report['dev_files']} files, {report['dev_bytes']:,} of "
                   f"{report['full_bytes']:,} bytes; report {report_path}")
        return
    made = f"made by stage {stage}" if stage else "sampled"
    if like_log:
        made += f" with the class shares of {like_log}"
    special = report.get("outliers_and_corrupt")
    click.echo(
        f"{dev}: {made}, {report['dev_rows']} of {report['full_rows']} samples "
        f"({100 * report['dev_fraction']:.2f}%), largest stratum deviation {report['max_abs_deviation_pp']:.3f} pp"
        + (f", {special['included']} of {special['found']} outliers/corrupt included" if special else "")
        + f"; report {report_path}"
    )
    damaged = report.get("damaged_files", {})
    if damaged.get("found"):
        first = damaged["listed"][0]
        click.echo(f"{dev}: {damaged['found']} damaged file(s) in the data, e.g. {first['path']}: {first['problem']} "
                   f"(all in {report_path}; those sampled are kept in the dev dataset)")
    if record:
        click.echo(f"{dev}: recorded the new dev dataset in {commit[:12]} and pushed it" if commit else
                   f"{dev}: the same sample as committed: nothing to record")


@data.command("check-dev")
@click.option("--against", type=click.Path(dir_okay=False), help="Manifest or production-input log to compare with; default: the full manifest.")
@click.option("--label-column", help="Label column of --against (e.g. prediction); default: the dataset's (label).")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.01, show_default=True,
              help="Significance level of each drift test (chi-square on class shares, KS per numeric column).")
@click.option("--min-effect", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="Smallest effect that counts as drift (Cramér's V for class shares, KS statistic for columns).")
@click.option("--verdict", "verdict_path", type=click.Path(dir_okay=False),
              help="Also write the verdict to this JSON file, drift or not (for `alops data drift-issue`).")
@click.option("--branch", help="The branch the verdict is about, in that file; default: the CI branch.")
@click.option("--model", "model_uri", metavar="URI",
              help="The model that made --against's predictions (a folder, models:/name@alias): its predictions on "
                   "the dev rows are compared with the log's, like with like, instead of the dev labels.")
def data_check_dev(against, label_column, alpha, min_effect, verdict_path, branch, model_uri) -> None:
    """Check that the dev dataset still represents the full or live data; exit 1 when it does not.

    \b
    Example (a scheduled CI job, the log's predictions against the served model's on the dev rows):
      alops data check-dev --against logs/last-week.csv --label-column prediction --model models:/digits@champion
    """
    from alops.data.devset import check_dev, dataset_files
    from alops.report import drift_issue

    with Project.open() as project:
        label = project.config.data.label
        compared = [against] if against else dataset_files(project, "full")
        dev_files = dataset_files(project, "dev")
        predicted = None
        if model_uri:
            from alops.serve.drift_model import predicted_classes

            predictions = predicted_classes(model_uri, dev_files, label)
            click.echo(f"check-dev --model: {predictions.summary()}")
            predicted = predictions.counts
        elif against and label_column and label_column != label:
            click.echo(f"note: the dev labels are compared with the log's {label_column!r}; pass --model (the model "
                       "that made them) to compare predictions with predictions", err=True)
        verdict = check_dev(dev_files, compared, label_column or label, alpha, min_effect, dev_label=label,
                            dev_predicted=predicted)
        shown = os.path.relpath(against) if against else "the full data"
        remedy, what_it_does = _remedy(verdict, against, label_column)
        if verdict_path:
            drift_issue.save(verdict_path, drift_issue.record(verdict, branch or project.context.branch or "HEAD",
                                                              shown, remedy, os.path.relpath(against) if against else "",
                                                              label_column or label))
        for problem in verdict["problems"]:
            click.echo(problem)
        if not verdict["representative"]:
            raise AlopsError(f"the dev dataset no longer represents {shown}: {verdict['problems'][0]}; "
                             f"run `{remedy}` ({what_it_does})")
        tests = "; ".join(f"{name}: effect {test['effect']:.3f}, p {test['p_value']:.2g}" for name, test in verdict["tests"].items())
        click.echo(f"dev dataset is representative ({verdict['dev_rows']} dev rows vs {verdict['live_rows']}"
                   f"{'; ' + tests if tests else ''}; alpha {alpha}, min effect {min_effect})")


def _remedy(verdict: dict, against: str | None, label_column: str | None) -> tuple[str, str]:
    """The command that makes the dev dataset represent what it was compared with again, and what it does."""
    size = f"alops data make-dev --count {verdict['dev_rows']}"
    if against is None:
        return size, "a new sample of the full data"
    log = shlex.quote(os.path.relpath(against))
    if verdict["tests"].get("labels", {}).get("drifted"):
        column = f" --label-column {shlex.quote(label_column)}" if label_column else ""
        return f"{size} --like {log}{column}", "the labeled samples take its class shares"
    return f"alops pool add {log} && {size}", "its features moved: its samples join the full data, then a new sample"


@data.command("drift-issue")
@click.argument("verdict_path", metavar="VERDICT", type=click.Path(dir_okay=False))
def data_drift_issue(verdict_path) -> None:
    """Open the branch's drift issue from a check-dev verdict, or update it while it is open.

    A verdict that found the dev dataset representative closes the branch's open drift issue with a comment
    that says so (nothing is posted when none is open). Needs the forge token of a CI job: GITLAB_TOKEN (api
    scope) or GITHUB_TOKEN with `issues: write`.

    \b
    Example (after `alops data check-dev ... --verdict intake/drift.json` failed):
      alops data drift-issue intake/drift.json
    """
    from alops.core.branches import resolve_context
    from alops.forge import client as forge
    from alops.report import drift_issue

    verdict = drift_issue.read(verdict_path)
    context = resolve_context()
    outcome = drift_issue.file(forge.connect(context), verdict, context.ci_job_url)
    if outcome is None:
        click.echo(f"{verdict_path}: the dev dataset was representative and no drift issue is open: nothing to do")
    else:
        click.echo(f"drift issue {outcome.action}: {outcome.url}")


commands = [data]
