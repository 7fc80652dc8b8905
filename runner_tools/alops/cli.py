"""The `alops` command line: thin click commands over the library.

This is the only place that turns the project's errors into exit codes: 2 for a usage or
configuration error, 1 for a failed operation. Heavy libraries are imported inside commands.
"""

from __future__ import annotations

import os
import sys

import click

from alops import __version__
from alops.errors import AlopsError, ConfigError
from alops.formats import FORMATS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="alops")
def cli() -> None:
    """Runner tools for the Git flow of active-learning projects.

    The branch decides what runs: feature branches use the dev dataset on CPU, experiment
    branches the full data on GPU, release branches gate and deploy, al/ branches carry new
    labels. Run `alops context` to see what the current branch means.
    """


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="text",
    show_default=True,
    help="text for people; json for scripts; env for `eval`; dotenv for GitLab "
    "artifacts:reports:dotenv; github appends step outputs to $GITHUB_OUTPUT.",
)
@click.option("--branch", metavar="NAME", help="Resolve this branch instead of reading CI variables or git.")
def context(fmt: str, branch: str | None) -> None:
    """Print the branch kind and its profile (dataset, device, tracking, ...).

    \b
    Examples:
      alops context
      alops context --format json | jq -r .profile.dataset
      eval "$(alops context --format env)"; echo "$ALOPS_KIND"
    """
    from alops import formats
    from alops.branches import resolve_context
    from alops.config import load_config

    resolved = resolve_context(load_config().branches, branch=branch)
    if resolved.notice:
        click.echo(f"alops: notice: {resolved.notice}", err=True)
    if fmt == "github":
        path = os.environ.get("GITHUB_OUTPUT")
        if not path:
            raise ConfigError("GITHUB_OUTPUT is not set: --format github runs in GitHub Actions; use --format json elsewhere")
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(formats.render_github_outputs(resolved))
        click.echo(formats.render_text(resolved), nl=False)
        return
    render = {
        "text": formats.render_text,
        "json": formats.render_json,
        "env": formats.render_env,
        "dotenv": formats.render_dotenv,
    }[fmt]
    click.echo(render(resolved), nl=False)


DATASET_OPTION = click.option(
    "--dataset",
    type=click.Choice(["dev", "full"]),
    help="Which dataset; default: the one the branch kind's profile names.",
)
REMOTE_OPTION = click.option("--remote", metavar="NAME", help="DVC remote to use instead of the default one.")


def _project():
    """(configuration, DVC root, branch context) of the project around the current folder."""
    from alops.branches import resolve_context
    from alops.config import load_config
    from alops.data import find_dvc_root

    config = load_config()
    root = config.root or find_dvc_root()
    return config, root, resolve_context(config.branches, cwd=root)


def _dataset_folder(config, root: str, dataset: str) -> str:
    return os.path.join(root, config.data.dev if dataset == "dev" else config.data.full)


@cli.group()
def data() -> None:
    """Datasets with DVC: pull/push for the branch, dev datasets, data version."""


@data.command("pull")
@DATASET_OPTION
@REMOTE_OPTION
@click.option("--allow-missing", is_flag=True, help="Skip files missing on the remote (never on experiment or release branches).")
def data_pull(dataset: str | None, remote: str | None, allow_missing: bool) -> None:
    """Pull the dataset the branch needs: dev on feature and main, full on experiment, release and al/.

    The version pulled is the one the branch's .dvc / dvc.lock files record. A missing or corrupt
    object fails the command (remotes are read with verify = true).

    \b
    Examples:
      alops data pull                  # what this branch needs
      alops data pull --dataset full
    """
    from alops import data as dvc_data

    config, root, context = _project()
    dataset = dataset or context.profile.dataset
    if allow_missing and context.kind in ("experiment", "release"):
        raise ConfigError(f"--allow-missing is refused on {context.kind} branches: their runs need every file")
    folder = _dataset_folder(config, root, dataset)
    relative = os.path.relpath(folder, root)
    click.echo(f"alops: pulling the {dataset} dataset ({relative}) for {context.kind} branch {context.branch!r}", err=True)
    stats = dvc_data.pull(root, [folder], remote=remote, allow_missing=allow_missing)
    click.echo(f"{relative}: {stats.get('fetched', 0)} files fetched, {len(stats.get('added', []))} added, "
               f"{len(stats.get('modified', []))} modified, {len(stats.get('deleted', []))} deleted")


@data.command("push")
@click.option("--dataset", type=click.Choice(["dev", "full", "all"]), help="Which dataset; default: the branch profile's; all: everything tracked.")
@REMOTE_OPTION
def data_push(dataset: str | None, remote: str | None) -> None:
    """Push the branch's dataset (or all tracked data) to the DVC remote."""
    from alops import data as dvc_data

    config, root, context = _project()
    dataset = dataset or context.profile.dataset
    targets = None if dataset == "all" else [_dataset_folder(config, root, dataset)]
    count = dvc_data.push(root, targets, remote=remote)
    click.echo(f"{dataset}: {count} files pushed")


@data.command("version")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def data_version(fmt: str) -> None:
    """Print a stable identifier of the data the workspace's DVC files record (for tracking and releases)."""
    import json

    from alops import data as dvc_data
    from alops.data import find_dvc_root

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
def data_make_dev(fraction, count, time_budget, seconds_per_sample, seed, z_outlier, outlier_share, report_path, no_track) -> None:
    """Sample the dev dataset from the full data, keep its strata, track it with DVC.

    Keeps the shares of label x split (unlabeled samples included), always takes outliers and corrupt
    samples (up to --outlier-share), and writes a fidelity report.

    \b
    Examples:
      alops data make-dev --fraction 0.05
      alops data make-dev --time-budget 300 --seconds-per-sample 0.02
    """
    from alops import data as dvc_data
    from alops.devset import DevSize, check_size, make_dev

    size = DevSize(fraction, count, time_budget, seconds_per_sample)
    check_size(size)
    config, root, _ = _project()
    full = _dataset_folder(config, root, "full")
    dev = _dataset_folder(config, root, "dev")
    report_file = os.path.join(root, report_path)
    report = make_dev(
        os.path.join(full, config.data.manifest), dev, report_file, size,
        seed=seed, classes=config.data.classes, z_outlier=z_outlier, outlier_share=outlier_share,
    )
    if not no_track:
        dvc_data.track(root, dev)
        dvc_data.register_metrics(root, report_file)
    special = report["outliers_and_corrupt"]
    click.echo(
        f"{os.path.relpath(dev, root)}: {report['dev_rows']} of {report['full_rows']} samples "
        f"({100 * report['dev_fraction']:.2f}%), largest stratum deviation {report['max_abs_deviation_pp']:.3f} pp, "
        f"{special['included']} of {special['found']} outliers/corrupt included; report {report_path}"
    )


@data.command("check-dev")
@click.option("--against", type=click.Path(dir_okay=False), help="Manifest or production-input log to compare with; default: the full manifest.")
@click.option("--label-column", default="label", show_default=True, help="Label column of --against (e.g. prediction).")
@click.option("--max-deviation", type=float, default=2.0, show_default=True, help="Largest allowed label-share difference, in percentage points.")
@click.option("--max-ks", type=float, default=0.1, show_default=True, help="Largest allowed KS statistic per numeric column.")
def data_check_dev(against, label_column, max_deviation, max_ks) -> None:
    """Check that the dev dataset still represents the full or live data; exit 1 when it does not.

    \b
    Example (a scheduled CI job):
      alops data check-dev --against logs/last-week.csv --label-column prediction
    """
    from alops.devset import check_dev

    config, root, _ = _project()
    dev_manifest = os.path.join(_dataset_folder(config, root, "dev"), config.data.manifest)
    against = against or os.path.join(_dataset_folder(config, root, "full"), config.data.manifest)
    verdict = check_dev(dev_manifest, against, label_column, max_deviation, max_ks)
    for problem in verdict["problems"]:
        click.echo(problem)
    if not verdict["representative"]:
        raise AlopsError(f"the dev dataset no longer represents {os.path.relpath(against)}: "
                         f"{verdict['problems'][0]}; run `alops data make-dev`")
    click.echo(f"dev dataset is representative ({verdict['dev_rows']} dev rows vs {verdict['live_rows']})")


@cli.command("run")
@click.argument("stages", nargs=-1)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Default: the branch profile's device.")
@click.option("--allow-cpu", is_flag=True, envvar="ALOPS_ALLOW_CPU",
              help="Run on the CPU when the profile asks for a GPU and none is visible (env: ALOPS_ALLOW_CPU=true).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Set a parameter in params.yaml first (repeatable).")
@click.option("--track/--no-track", default=None, help="Default: on where the profile tracks or MLFLOW_TRACKING_URI is set.")
@click.option("--dry-run", is_flag=True, help="Print the plan and do nothing.")
def run_command(stages, device, allow_cpu, assignments, track, dry_run) -> None:
    """Run the pipeline as the runner does for this branch: data, dvc repro, tracking, push.

    \b
    Examples:
      alops run                          # feature branch: dev data, CPU
      alops run --dry-run
      alops run --set train.lr=0.01 train
    """
    from alops.params import parse_assignment
    from alops.pipeline import run_pipeline

    sets = dict(parse_assignment(a) for a in assignments)
    _, root, context = _project()
    if context.notice:
        click.echo(f"alops: notice: {context.notice}", err=True)
    result = run_pipeline(root, context, list(stages), device, allow_cpu, sets, track, dry_run,
                          echo=lambda line: click.echo(f"alops: {line}", err=True))
    for name, value in sorted(result.metrics.items()):
        click.echo(f"{name}: {value:g}")


@cli.group("params")
def params_group() -> None:
    """params.yaml and its allowed values (params.schema.yaml)."""


@params_group.command("check")
def params_check() -> None:
    """Validate params.yaml against params.schema.yaml: one line per problem, exit 2."""
    from alops import params

    root = _root()
    schema = params.load_schema(root)
    if schema is None:
        raise ConfigError(f"no {params.SCHEMA_FILE} here: list each parameter's type and allowed values in it")
    errors = params.check(params.load_params(root), schema)
    for error in errors:
        click.echo(f"{params.PARAMS_FILE}: {error}", err=True)
    if errors:
        raise ConfigError(f"{len(errors)} parameter(s) not allowed")
    click.echo(f"{params.PARAMS_FILE}: {len(schema)} parameters allowed")


@params_group.command("matrix")
@click.option("--format", "fmt", type=click.Choice(["gitlab", "github", "json"]), default="json", show_default=True)
@click.option("--sample", type=int, help="Pick this many combinations at random (with --seed).")
@click.option("--seed", type=int, default=0, show_default=True)
def params_matrix(fmt, sample, seed) -> None:
    """Print the allowed parameter combinations for CI to test on the dev dataset.

    \b
    gitlab: parallel:matrix entries (PARAM_TRAIN_LR=...); github: {"include": [...]} for fromJSON().
    Each combination runs as: alops run --set train.lr="$PARAM_TRAIN_LR" ...
    """
    import json

    from alops import params

    root = _root()
    schema = params.load_schema(root)
    if schema is None:
        raise ConfigError(f"no {params.SCHEMA_FILE} here: list the values to try under `values:`")
    if sample is not None and sample < 1:
        raise ConfigError("--sample must be at least 1")
    combos = params.matrix(schema, sample, seed)
    output = {"gitlab": params.gitlab_matrix, "github": params.github_matrix, "json": lambda c: c}[fmt](combos)
    click.echo(json.dumps(output))


@cli.group("track")
def track_group() -> None:
    """Tracking (MLflow): runs buffered during an outage."""


@track_group.command("sync")
def track_sync() -> None:
    """Send runs buffered while the tracking server was unreachable; each is recorded once."""
    from alops import tracking

    root = _root()
    sent, left = tracking.sync(root, tracking.tracking_uri(root))
    click.echo(f"{sent} buffered run(s) sent" + (f", {left} left" if left else ""))


@cli.command("select-best")
@click.option("--metric", required=True, help="Metric to rank by, e.g. val_accuracy.")
@click.option("--mode", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--kind", help="Branch kind whose experiment to search; default: this branch's.")
@click.option("--commit", help="Only runs of this commit (default: the current one, when known).")
def select_best(metric, mode, kind, commit) -> None:
    """Pick the best candidate run by a metric (e.g. after a params matrix) and print its params as JSON."""
    import json

    from alops import tracking
    from alops.pipeline import project_name

    _, root, context = _project()
    best = tracking.best_run(tracking.tracking_uri(root), f"{project_name(root)}/{kind or context.kind}",
                             metric, mode, commit or context.commit)
    click.echo(json.dumps(best, indent=2, sort_keys=True))


@cli.group("query", invoke_without_command=False)
def query_group() -> None:
    """Active learning: select the pool samples most worth labeling."""


@query_group.command("select")
@click.argument("pool", type=click.Path(dir_okay=False))
@click.option("--strategy", default="least-confidence", show_default=True,
              type=click.Choice(["random", "least-confidence", "margin", "entropy", "bald", "core-set", "hybrid"]))
@click.option("-k", "k", type=int, required=True, help="How many samples to select.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shard", metavar="I/N", help="Score only shard I of N (streaming strategies); merge with `alops query merge`.")
@click.option("--balanced", is_flag=True, help="Spread k over the predicted classes.")
@click.option("--embeddings", type=click.Path(dir_okay=False), help=".npy (N, D) for core-set and hybrid.")
@click.option("--labeled-embeddings", type=click.Path(dir_okay=False), help=".npy (M, D) of the labeled set (core-set distances).")
@click.option("--out", "out", default="selection.json", show_default=True, help="Selection file to write.")
def query_select(pool, strategy, k, seed, shard, balanced, embeddings, labeled_embeddings, out) -> None:
    """Select k samples from POOL: probabilities (N, C) as .npy or Parquet (columns p0..pC-1).

    For bald, POOL holds MC-dropout passes (T, N, C) as .npy. least-confidence, margin, entropy and random
    stream over the file in chunks (memory: one chunk plus k) and can be sharded.

    \b
    Examples:
      alops query select pool_probs.npy -k 500 --strategy margin
      alops query select pool_probs.npy -k 500 --shard 2/8 --out shard-2.json
    """
    from alops.al import scoring

    if shard or (strategy in scoring.STREAMABLE and not balanced):
        result = scoring.select_streaming(pool, strategy, k, seed, scoring.parse_shard(shard) if shard else None,
                                          progress=_progress_printer())
    else:
        result = scoring.select_in_memory(pool, strategy, k, seed, balanced, embeddings, labeled_embeddings)
    scoring.write_json(out, result)
    click.echo(f"{out}: {len(result['indices'])} of {result['pool_rows']} samples selected by {result['strategy']}"
               + (f" (shard {result['shard']})" if result.get("shard") else ""))


@query_group.command("score")
@click.argument("model", type=click.Path(dir_okay=False))
@click.argument("inputs", type=click.Path(dir_okay=False))
@click.option("--out", "out", default="pool_probs.npy", show_default=True, help="Probabilities (N, C) as float32 .npy.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: $ALOPS_DEVICE or cpu.")
def query_score(model, inputs, out, device) -> None:
    """Score the pool with the current model: INPUTS (.npy, N x features) -> probabilities for `query select`.

    MODEL is TorchScript (torch.jit.save) or a pickled scikit-learn estimator (.joblib/.pkl) with predict_proba.
    """
    from alops.al import scoring

    rows, classes = scoring.score_with_model(model, inputs, out, device or os.environ.get("ALOPS_DEVICE", "cpu"),
                                             progress=_progress_printer())
    click.echo(f"{out}: {rows} x {classes} probabilities")


@query_group.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out", default="selection.json", show_default=True)
def query_merge(shards, out) -> None:
    """Merge the selections of all shards into the single-pass selection."""
    from alops.al import scoring

    result = scoring.merge([scoring.read_selection(path) for path in shards])
    scoring.write_json(out, result)
    click.echo(f"{out}: {len(result['indices'])} samples from {len(shards)} shards")


LABEL_STUDIO_URL = click.option("--label-studio-url", metavar="URL", help="A Label Studio server (token in LABEL_STUDIO_API_KEY).")
LABEL_STUDIO_PROJECT = click.option("--project", default="alops", show_default=True, help="Label Studio project title.")


@cli.group("labels")
def labels_group() -> None:
    """The hand-off to labelers: export tasks, import their labels."""


def _classes(config, manifest: str) -> list[str]:
    """The declared classes, else the labels the manifest already uses."""
    if config.data.classes:
        return list(config.data.classes)
    from alops.manifest import inspect_manifest, iter_batches

    seen: set = set()
    for batch in iter_batches(inspect_manifest(manifest)):
        seen.update(v for v in batch.column("label").to_pylist() if v is not None)
    if not seen:
        raise ConfigError("no classes known: declare data.classes in alops.yaml")
    return sorted(seen, key=lambda v: (len(v), v))


@labels_group.command("export")
@click.argument("selection", type=click.Path(dir_okay=False))
@click.option("--out", "out", default="labeling", show_default=True, help="Folder for tasks.json, tasks.csv, batch.json.")
@click.option("--model-version", default=None, help="Shown to labelers with each prediction; default: the commit.")
@click.option("--image-prefix", default="", help="Prefix for image paths, e.g. the URL the files are served from.")
@LABEL_STUDIO_URL
@LABEL_STUDIO_PROJECT
def labels_export(selection, out, model_version, image_prefix, label_studio_url, project) -> None:
    """Turn a selection into Label Studio tasks (with uncertainty scores) and a CSV for labelers.

    With --label-studio-url (and LABEL_STUDIO_API_KEY) the tasks are also created in the project; a re-run
    adds none twice.
    """
    import json

    from alops.al.scoring import read_selection
    from alops.labeling import export_tasks, label_config

    config, root, context = _project()
    manifest = os.path.join(_dataset_folder(config, root, "full"), config.data.manifest)
    classes = _classes(config, manifest)
    batch = export_tasks(read_selection(selection), manifest, out, classes,
                         model_version or (context.commit or "local")[:12], image_prefix)
    with open(os.path.join(out, "label_config.xml"), "w", encoding="utf-8") as handle:
        handle.write(label_config(classes))
    click.echo(f"{out}: {len(batch['sample_ids'])} tasks in batch {batch['batch_id']} (tasks.json, tasks.csv, label_config.xml)")
    if label_studio_url:
        from alops.labelstudio import LabelStudio

        studio = LabelStudio(label_studio_url)
        project_id = studio.project(project, label_config(classes))
        with open(os.path.join(out, "tasks.json"), encoding="utf-8") as handle:
            added = studio.add_tasks(project_id, json.load(handle))
        click.echo(f"Label Studio project {project!r} (id {project_id}): {added} tasks added")


@labels_group.command("import")
@click.argument("export", type=click.Path(dir_okay=False), default="labeling/export.json")
@click.option("--batch", "batch_path", default="labeling/batch.json", show_default=True)
@click.option("--min-agreement", type=float, default=0.5, show_default=True,
              help="Share of annotators that must agree; below it the sample goes back to the queue.")
@click.option("--partial", is_flag=True, help="Accept an export that covers only part of the batch.")
@LABEL_STUDIO_URL
@LABEL_STUDIO_PROJECT
@click.option("--commit/--no-commit", "record", default=None,
              help="Record the new data version (dvc add/push, git commit/push); default: on active-learning branches.")
def labels_import(export, batch_path, min_agreement, partial, label_studio_url, project, record) -> None:
    """Validate a Label Studio export (JSON, JSON-MIN or CSV) against its batch and label the pool.

    With --label-studio-url the project's export is fetched first and saved as EXPORT. On an al/ branch the
    new data version is committed and pushed; a push rejected by a concurrent import is retried on top of it.
    """
    import json

    from alops.labeling import import_labels

    if label_studio_url:
        from alops.al.scoring import write_json
        from alops.labelstudio import LabelStudio

        studio = LabelStudio(label_studio_url)
        tasks = studio.export(studio.project(project))
        with open(batch_path, encoding="utf-8") as handle:
            wanted = set(json.load(handle)["sample_ids"])
        write_json(export, [t for t in tasks if str((t.get("data") or {}).get("sample_id")) in wanted])
    config, root, context = _project()
    folder = _dataset_folder(config, root, "full")
    manifest = os.path.join(folder, config.data.manifest)
    if record if record is not None else context.profile.data_commits:
        from alops.record import commit_data_change

        outcome = {}

        def apply() -> int:
            outcome["report"] = import_labels(export, batch_path, manifest, min_agreement, partial)
            return outcome["report"].changed

        with open(batch_path, encoding="utf-8") as handle:
            batch_id = json.load(handle).get("batch_id", "?")
        commit = commit_data_change(root, folder, apply, f"Labels of batch {batch_id}", context.branch)
        report = outcome["report"]
        if commit:
            click.echo(f"recorded the new data version in {commit[:12]} on {context.branch}")
    else:
        report = import_labels(export, batch_path, manifest, min_agreement, partial)
    for sample, reason in sorted(report.requeued.items()):
        click.echo(f"back to the queue: {sample}: {reason}")
    click.echo(f"{len(report.accepted)} labels accepted, {report.changed} samples changed, "
               f"{len(report.requeued)} back to the queue, {report.cancelled} cancelled annotations ignored")


@cli.command("simulate")
@click.option("--manifest", type=click.Path(dir_okay=False), help="A fully labeled manifest with numeric feature columns.")
@click.option("--digits", is_flag=True, help="Use scikit-learn's digits (no download) instead of a manifest.")
@click.option("--model", type=click.Choice(["logreg", "torch-mlp"]), default="logreg", show_default=True)
@click.option("--strategies", default="random,least-confidence,margin,entropy", show_default=True,
              help="Comma-separated; random is the baseline.")
@click.option("--initial", type=int, default=20, show_default=True, help="Random labels to start from.")
@click.option("--rounds", type=int, default=20, show_default=True)
@click.option("--per-round", type=int, default=20, show_default=True, help="Labels the oracle gives per round.")
@click.option("--scoring-pool", type=int, default=300, show_default=True, help="Unlabeled samples scored per round.")
@click.option("--seeds", type=int, default=5, show_default=True)
@click.option("--out", "out", default="simulation", show_default=True, help="Folder for simulation.csv and learning_curve.png.")
def simulate_command(manifest, digits, model, strategies, initial, rounds, per_round, scoring_pool, seeds, out) -> None:
    """Compare query strategies with an oracle on fully labeled data (learning curves over seeds).

    \b
    Example:
      alops simulate --digits --seeds 5 --rounds 20 --per-round 20 --scoring-pool 300
    """
    from alops.al.simulation import SimulationPlan, simulate, write_outputs

    if bool(manifest) == digits:
        raise ConfigError("give exactly one of --manifest PATH or --digits")
    x, y = _labeled_features(manifest) if manifest else _digits()
    plan = SimulationPlan(initial, rounds, per_round, scoring_pool, tuple(s.strip() for s in strategies.split(",") if s.strip()),
                          seeds, model)
    result = simulate(x, y, plan, echo=lambda line: click.echo(line, err=True))
    summary = result["summary"]
    names = list(summary)
    click.echo(f"{'labels':>7} " + " ".join(f"{n:>17}" for n in names))
    for row, labels in enumerate(summary[names[0]]["labels"]):
        click.echo(f"{labels:7d} " + " ".join(f"{summary[n]['mean'][row]:11.3f} ±{summary[n]['std'][row]:.3f}" for n in names))
    click.echo(f"full-data accuracy {result['full_accuracy']:.3f}; labels to reach 95% of it: "
               + ", ".join(f"{n} {summary[n]['labels_to_95pct'] or 'not reached'}" for n in names))
    csv_path, png_path = write_outputs(result, out)
    click.echo(f"wrote {csv_path} and {png_path}")


def _digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.data, digits.target


def _labeled_features(path: str):
    import numpy as np
    import pyarrow.compute as pc

    from alops.manifest import inspect_manifest, iter_batches

    info = inspect_manifest(path, required=("label",))
    if not info.numeric:
        raise ConfigError(f"{path}: no numeric feature columns to learn from")
    features, labels = [], []
    for batch in iter_batches(info):
        keep = pc.is_valid(batch.column("label"))
        batch = batch.filter(keep)
        features.append(np.column_stack([np.nan_to_num(batch.column(c).to_numpy(zero_copy_only=False)) for c in info.numeric]))
        labels.append(np.array(batch.column("label").to_pylist()))
    return np.concatenate(features), np.concatenate(labels)


TARGET_OPTION = click.option("--target", metavar="BRANCH",
                             help="Branch to compare with / merge into; default: the MR's target, else the default branch.")


def _target(context, target: str | None) -> str:
    if target:
        return target
    if context.merge_request:
        return context.merge_request.target_branch
    return context.default_branch


def _build_report(root: str, config, context, target: str, curve_metric: str | None, simulation: str | None, out: str):
    from alops import report as report_mod
    from alops.tracking import tracking_uri

    uri = tracking_uri(root)
    if not os.environ.get("MLFLOW_TRACKING_URI") and not os.path.exists(os.path.join(root, "mlflow.db")):
        uri = None  # nothing tracked here: compare with what the target branch committed
    built = report_mod.collect(root, config.data, context, target, uri, curve_metric, simulation)
    png = None
    if built.kind == "active-learning" and built.curve:
        png = report_mod.learning_curve_png(built, os.path.join(os.path.dirname(os.path.abspath(out)), "learning_curve.png"))
    return built, png


@cli.command()
@click.option("--keep", "folder", metavar="DIR", help="Run in DIR and keep it (default: a new temporary folder, kept).")
def demo(folder: str | None) -> None:
    """Run the whole flow on the digits example: scaffold, dev data, feature and experiment runs, a report,
    three active-learning rounds with an oracle, a release with its gate. No network; a few minutes.

    \b
    Examples:
      alops demo
      alops demo --keep /tmp/alops-demo
    """
    from alops.demo import run_demo

    if folder and os.path.exists(folder) and os.listdir(folder):
        raise ConfigError(f"{folder} exists and is not empty: choose a new folder for the demo")
    run_demo(folder, echo=click.echo)


@cli.command()
@click.argument("path")
@click.option("--name", help="Project name shown in its README; default: the folder name.")
@click.option("--forge", type=click.Choice(["gitlab", "github", "both"]), default="gitlab", show_default=True,
              help="Which CI file the project gets.")
@click.option("--version", "version", metavar="REF", help="alops version (component / workflow ref) the CI file pins.")
@click.option("--remote", metavar="URL", help="Default DVC remote; default: a folder beside the project.")
@click.option("--classes", default="0,1,2,3,4,5,6,7,8,9", show_default=True, help="The label names, comma-separated.")
@click.option("--example", type=click.Choice(["none", "digits"]), default="none", show_default=True,
              help="digits adds scripts/prepare_digits.py, which renders scikit-learn's digits as the dataset.")
def new(path: str, name, forge, version, remote, classes, example) -> None:
    """Scaffold an active-learning project wired to alops: stages, dvc.yaml, params, CI, DVC remote.

    PATH must not exist (or be empty); its name is the project slug.

    \b
    Examples:
      alops new digits_al --forge both --example digits
    """
    from alops.scaffold import new_project

    made = new_project(path, name, forge, version, remote, classes, example)
    click.echo(f"new: project in {made}; next: cd {path} && alops context")


@cli.command()
@TARGET_OPTION
@click.option("--out", default="report.md", show_default=True, help="Where to write the markdown.")
@click.option("--post", is_flag=True, help="Create or update the one alops comment on the MR/PR of this pipeline or branch.")
@click.option("--post-if-open", is_flag=True,
              help="As --post, but only a notice when no MR/PR is open for the branch or no forge token is set.")
@click.option("--metric", "curve_metric", metavar="NAME", help="Metric of the learning curve (default: accuracy).")
@click.option("--simulation", type=click.Path(dir_okay=False, exists=True),
              help="simulation.csv from `alops simulate`: its random strategy is the curve's baseline.")
def report(target: str | None, out: str, post: bool, post_if_open: bool, curve_metric: str | None,
           simulation: str | None) -> None:
    """Write the metrics report of this run against the target branch (and post it on the MR/PR).

    Metrics with deltas, params that changed, the data version and, on al/ branches, labels added and a
    learning curve. `--post` keeps ONE comment per MR/PR: re-runs update it.

    \b
    Examples:
      alops report --target main
      alops report --post            # in a merge-request pipeline, or a branch with an open MR
      alops report --post-if-open    # in a branch pipeline: post when an MR is open
    """
    from alops import forge, report as report_mod
    from alops.files import atomic_write

    config, root, context = _project()
    target = _target(context, target)
    built, png = _build_report(root, config, context, target, curve_metric, simulation, out)
    text = report_mod.render(built, f"![learning curve]({os.path.basename(png)})" if png else None)
    atomic_write(out, text)
    click.echo(f"report: {out}" + (f", learning curve {png}" if png else ""))
    if not (post or post_if_open):
        return
    merge_request = context.merge_request
    if merge_request is not None and merge_request.from_fork:
        click.echo("alops: notice: the merge request comes from a fork: the report is not posted (no secrets "
                   f"for fork pipelines); it is in {out}", err=True)
        return
    try:
        target_forge = forge.connect(context)
    except ConfigError as exc:
        if not post_if_open:
            raise
        click.echo(f"alops: notice: report not posted: {exc}", err=True)
        return
    number = merge_request.number if merge_request and merge_request.number else None
    if number is None and context.branch:
        found = target_forge.find_merge_request(context.branch)
        number = None if found is None else str(getattr(found, "iid", None) or found.number)
    if number is None:
        message = (f"no open merge request for branch {context.branch!r}: open one (`alops promote`), or post from "
                   "a merge-request pipeline")
        if post_if_open:
            click.echo(f"alops: notice: report not posted: {message}", err=True)
            return
        raise AlopsError(message)
    image = target_forge.upload_image(png) if png else None
    if png and image is None and context.ci_job_url:
        image = f"[learning curve (job artifacts)]({context.ci_job_url})"
    outcome = target_forge.post_comment(number, report_mod.render(built, image))
    click.echo(f"report: comment {outcome.action} on #{number}: {outcome.url}")


@cli.command()
@TARGET_OPTION
@click.option("--title", help="Title of the MR/PR; default: from the branch name.")
@click.option("--label", "labels", multiple=True, metavar="NAME", help="Label to add (repeatable).")
@click.option("--draft", is_flag=True, help="Open it as a draft.")
@click.option("--report", "report_path", default="report.md", show_default=True,
              help="Markdown for the description (written by `alops report`; made now when missing).")
def promote(target: str | None, title: str | None, labels: tuple[str, ...], draft: bool, report_path: str) -> None:
    """Open or update the MR/PR from this experiment or al/ branch to its target; never a second one.

    \b
    Examples:
      alops promote --label experiment --draft
    """
    from alops import forge, report as report_mod

    config, root, context = _project()
    if context.kind not in ("experiment", "active-learning"):
        raise ConfigError(f"alops promote opens MRs from experiment and al/ branches; {context.branch!r} is {context.kind}")
    target = _target(context, target)
    if os.path.exists(report_path):
        with open(report_path, encoding="utf-8") as handle:
            description = handle.read()
    else:
        built, _png = _build_report(root, config, context, target, None, None, report_path)
        description = report_mod.render(built)
    title = title or f"{context.kind}: {context.branch}"
    outcome = forge.connect(context).upsert_merge_request(context.branch, target, title, description, labels, draft)
    click.echo(f"promote: merge request {outcome.action}: {outcome.url}")


@cli.command("release")
@click.option("--metric", required=True, metavar="NAME", help="Metric the gate compares with the champion's.")
@click.option("--direction", type=click.Choice(["max", "min"]), default="max", show_default=True)
@click.option("--min-delta", type=float, default=0.0, show_default=True, help="Smallest absolute gain that passes.")
@click.option("--min-relative", type=float, default=0.0, show_default=True, help="Smallest relative gain that passes (0.01 = 1%).")
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
@click.option("--artifact", metavar="PATH", help="The run's model artifact; default: the model file dvc.yaml declares.")
@click.option("--run-id", metavar="ID", help="Candidate run; default: the latest tracked run of this commit.")
@click.option("--record", default="release.json", show_default=True, help="Where to write the provenance record.")
@click.option("--publish", is_flag=True, help="Publish the record as a GitLab / GitHub release.")
def release_command(metric, direction, min_delta, min_relative, model, artifact, run_id, record, publish) -> None:
    """Gate the candidate against the champion, register it, move the `champion` alias (release branches).

    A missing or NaN metric fails closed; the first release (no champion yet) passes and says so.

    \b
    Examples:
      alops release --metric accuracy --min-delta 0.005 --publish
    """
    from alops import forge, release as release_mod
    from alops.pipeline import pipeline_files, project_name
    from alops.tracking import tracking_uri

    _config, root, context = _project()
    project = project_name(root)
    if artifact is None:
        models = pipeline_files(root)["models"]
        if not models:
            raise ConfigError("dvc.yaml declares no model output: pass --artifact with the model file the run logged")
        artifact = os.path.basename(models[0])
    gate = release_mod.Gate(metric, direction, min_delta, min_relative)
    target_forge = forge.connect(context) if publish else None  # a missing token fails before anything moves
    provenance = release_mod.release(tracking_uri(root), root, project, context, gate, model or project, artifact,
                                     run_id, echo=click.echo)
    release_mod.write_record(provenance, record)
    click.echo(f"release: {provenance.model} version {provenance.version} is the champion "
               f"(previous: {provenance.previous_version or 'none'}); record {record}")
    if target_forge is not None:
        outcome = target_forge.publish_release(provenance.git_tag, f"{provenance.model} v{provenance.version}",
                                               provenance.markdown(), provenance.git_commit)
        click.echo(f"release: {outcome.action} {outcome.url}")


@cli.command()
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
def rollback(model: str | None) -> None:
    """Move the `champion` alias back to the version the current champion replaced.

    \b
    Examples:
      alops rollback --model digits
    """
    from alops import release as release_mod
    from alops.pipeline import project_name
    from alops.tracking import tracking_uri

    root = _root()
    name = model or project_name(root)
    moved_from, moved_to = release_mod.rollback(tracking_uri(root), name)
    click.echo(f"rollback: {name} champion moved from version {moved_from} back to {moved_to}")


def _progress_printer():
    """Progress on a terminal (one rewritten line); silent in CI logs."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\rscoring: {done:,}/{total:,} rows ({100 * done / max(total, 1):.0f}%)", err=True,
                   nl=done >= total)

    return show


def _root() -> str:
    from alops.config import load_config
    from alops.data import find_dvc_root

    config = load_config()
    return config.root or find_dvc_root()


SECRET_VARIABLES = ("GITLAB_TOKEN", "CI_JOB_TOKEN", "GITHUB_TOKEN", "LABEL_STUDIO_API_KEY")


def _without_secrets(text: str) -> str:
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: one readable line and an exit code on error."""
    try:
        cli.main(args=argv, prog_name="alops", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("alops: aborted", err=True)
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except AlopsError as exc:
        click.echo(f"alops: error: {_without_secrets(str(exc))}", err=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
