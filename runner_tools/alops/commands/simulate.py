"""`alops simulate`: compare query strategies with an oracle."""

from __future__ import annotations

import click

from alops.errors import ConfigError


@click.command("simulate")
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
    from alops.al.simulation import SimulationPlan, digits_dataset, manifest_dataset, simulate, write_outputs

    if bool(manifest) == digits:
        raise ConfigError("give exactly one of --manifest PATH or --digits")
    x, y = manifest_dataset(manifest) if manifest else digits_dataset()
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


commands = [simulate_command]
