"""`alops query`: score the pool and select the samples most worth labeling."""

from __future__ import annotations

import os

import click

from alops.commands.options import progress_printer


@click.group("query")
def query_group() -> None:
    """Active learning: select the pool samples most worth labeling."""


@query_group.command("select")
@click.argument("pool", type=click.Path(dir_okay=False))
@click.option("--strategy", default="margin", show_default=True,
              type=click.Choice(["random", "least-confidence", "margin", "entropy", "bald", "core-set", "hybrid"]))
@click.option("-k", "k", type=int, required=True, help="How many samples to select.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shard", metavar="I/N", help="Score only shard I of N (streaming strategies); merge with `alops query merge`.")
@click.option("--balanced", is_flag=True, help="Spread k over the predicted classes.")
@click.option("--embeddings", type=click.Path(dir_okay=False), help=".npy (N, D) for core-set and hybrid.")
@click.option("--labeled-embeddings", type=click.Path(dir_okay=False), help=".npy (M, D) of the labeled set (core-set distances).")
@click.option("--ids", type=click.Path(dir_okay=False),
              help="Text file with the sample id of each pool row (one per line): the selection names its samples, "
                   "so the export joins by id. Empty: none.")
@click.option("--model", type=click.Path(),
              help="Score POOL (the model's inputs, N x features) with this model while selecting: TorchScript, "
                   "torch.export (.pt2), a pickled scikit-learn estimator, an MLflow model folder (sklearn or pytorch "
                   "flavour), or an MLflow URI (models:/name@champion). "
                   "Streams and shards; the probabilities are never written.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="With --model; default: $ALOPS_DEVICE or cpu.")
@click.option("--skip-labeled", is_flag=True,
              help="Never pick samples the full manifest labels already (a pool scored before the last label "
                   "import); needs --ids and the manifest (`alops data pull --dataset full --manifest-only`).")
@click.option("--out", "out", default="selection.json", show_default=True, help="Selection file to write.")
def query_select(pool, strategy, k, seed, shard, balanced, embeddings, labeled_embeddings, ids, model, device,
                 skip_labeled, out) -> None:
    """Select k samples from POOL: probabilities (N, C) as .npy or Parquet (columns p0..pC-1), or with --model
    the model's inputs.

    For bald, POOL holds MC-dropout passes (T, N, C) as .npy. least-confidence, margin, entropy and random
    stream over the file in chunks (memory: one chunk plus k) and can be sharded.

    \b
    Examples:
      alops query select pool_probs.npy -k 500 --strategy margin --ids pool_ids.txt
      alops query select pool_probs.npy -k 500 --shard 2/8 --out shard-2.json
      alops query select pool_inputs.npy --model model.pt -k 500 --shard 2/8 --out shard-2.json
    """
    from alops.al import scoring
    from alops.core.files import write_json

    result = scoring.select(pool, strategy, k, seed, shard, balanced, embeddings, labeled_embeddings,
                            progress=progress_printer(), ids=ids or None, model=model,
                            device=device or os.environ.get("ALOPS_DEVICE", "cpu"),
                            skip_ids=_labeled_ids() if skip_labeled else None)
    result.commit, result.data_version = _provenance()
    write_json(out, result.to_json())
    click.echo(f"{out}: {len(result.indices)} of {result.pool_rows} samples selected by {result.strategy}"
               + (f" (shard {result.shard})" if result.shard else "")
               + (f"; {result.skipped_labeled} pool samples labeled since were skipped"
                  if result.skipped_labeled else ""))


def _labeled_ids() -> set[str]:
    """The ids the project's full manifest labels."""
    from alops.core.errors import ConfigError
    from alops.core.project import Project
    from alops.data.manifest import labeled_ids

    with Project.open() as project:
        manifest = project.manifest("full")
    if not os.path.isfile(manifest):
        raise ConfigError(f"--skip-labeled reads {manifest}, which is not here: run `alops data pull --dataset full "
                          "--manifest-only` first")
    return labeled_ids(manifest)


def _provenance() -> tuple[str | None, str | None]:
    """The commit (whose model scored the pool) and the data version of the project around, when there is one."""
    from alops.core.errors import AlopsError
    from alops.core.project import Project
    from alops.data import storage as data

    commit = None
    try:
        with Project.open() as project:
            commit = project.context.commit
            return commit, data.data_version(project.root)["version"]
    except AlopsError:
        return commit, None  # a pool file outside a project, or no data tracked: nothing more to record


@query_group.command("score")
@click.argument("model", type=click.Path())
@click.argument("inputs", type=click.Path(dir_okay=False))
@click.option("--out", "out", default="pool_probs.npy", show_default=True, help="Probabilities (N, C) as float32 .npy.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default=None, help="Default: $ALOPS_DEVICE or cpu.")
def query_score(model, inputs, out, device) -> None:
    """Score the pool with the current model: INPUTS (.npy, N x features) -> probabilities for `query select`.

    MODEL is TorchScript (torch.jit.save), a torch.export program (.pt2, exported with a dynamic batch
    dimension), a pickled scikit-learn estimator (.joblib/.pkl) with predict_proba, an MLflow model folder of
    the sklearn or pytorch flavour, or an MLflow URI of one (models:/name@champion, models:/name/3,
    runs:/<run id>/model.pt; from $MLFLOW_TRACKING_URI).
    """
    from alops.al import scoring

    rows, classes = scoring.score_with_model(model, inputs, out, device or os.environ.get("ALOPS_DEVICE", "cpu"),
                                             progress=progress_printer())
    click.echo(f"{out}: {rows} x {classes} probabilities")


@query_group.command("merge")
@click.argument("shards", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out", default="selection.json", show_default=True)
def query_merge(shards, out) -> None:
    """Merge the selections of all shards into the single-pass selection."""
    from alops.al import scoring
    from alops.al.selection import Selection
    from alops.core.files import write_json

    result = scoring.merge([Selection.read(path) for path in shards])
    write_json(out, result.to_json())
    click.echo(f"{out}: {len(result.indices)} samples from {len(shards)} shards")


commands = [query_group]
