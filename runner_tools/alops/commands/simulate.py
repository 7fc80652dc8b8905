"""`alops simulate`: compare query strategies with an oracle."""

from __future__ import annotations

import click

from alops.core.errors import ConfigError

# (initial, rounds, per round, scoring pool) when not given: one data set, or the suite (which holds wine's 178 samples)
PLAN_DEFAULTS = {"single": (20, 20, 20, 300), "suite": (10, 10, 10, 100_000)}


@click.command("simulate")
@click.option("--manifest", type=click.Path(dir_okay=False), help="A fully labeled manifest with numeric feature columns.")
@click.option("--digits", is_flag=True, help="Use scikit-learn's digits (no download) instead of a manifest.")
@click.option("--suite", is_flag=True, help="Run over several data sets (digits, breast cancer, wine, two synthetic) "
              "and give each strategy a paired verdict against random.")
@click.option("--datasets", help="With --suite: comma-separated subset of the suite's data sets.")
@click.option("--model", type=click.Choice(["logreg", "torch-mlp"]), default="logreg", show_default=True)
@click.option("--strategies", default="random,least-confidence,margin,entropy", show_default=True,
              help="Comma-separated; random is the baseline.")
@click.option("--initial", type=int, help="Random labels to start from (at least two classes).  [default: 20; suite: 10]")
@click.option("--rounds", type=int, help="[default: 20; suite: 10]")
@click.option("--per-round", type=int, help="Labels the oracle gives per round.  [default: 20; suite: 10]")
@click.option("--scoring-pool", type=int,
              help="Unlabeled samples scored per round (a random subset; all when larger).  [default: 300; suite: all]")
@click.option("--seeds", type=int, default=5, show_default=True)
@click.option("--out", "out", default="simulation", show_default=True,
              help="Folder for simulation.csv and learning_curve.png (suite: suite.csv, suite.json, suite.png).")
def simulate_command(manifest, digits, suite, datasets, model, strategies, initial, rounds, per_round, scoring_pool,
                     seeds, out) -> None:
    """Compare query strategies with an oracle on fully labeled data (learning curves over seeds).

    \b
    Examples:
      alops simulate --digits --seeds 5 --rounds 20 --per-round 20 --scoring-pool 300
      alops simulate --suite --seeds 10
    """
    from alops.al import simulation

    if (bool(manifest) + digits + suite) != 1:
        raise ConfigError("give exactly one of --manifest PATH, --digits or --suite")
    if datasets and not suite:
        raise ConfigError("--datasets chooses among the suite's data sets: add --suite")
    defaults = PLAN_DEFAULTS["suite" if suite else "single"]
    given = (initial, rounds, per_round, scoring_pool)
    sizes = [d if v is None else v for v, d in zip(given, defaults)]
    plan = simulation.SimulationPlan(sizes[0], sizes[1], sizes[2], sizes[3],
                                     tuple(s.strip() for s in strategies.split(",") if s.strip()), seeds, model)
    echo = lambda line: click.echo(line, err=True)
    if suite:
        result = simulation.run_suite(plan, simulation.suite_datasets(datasets), echo=echo)
        click.echo(f"{'data set':16} {'strategy':17} {'AULC':>13} {'vs random':>15} {'wins':>6} {'worst round':>19} {'to 95%':>6}  verdict")
        for name, run in result["datasets"].items():
            for strategy, v in run["verdicts"].items():
                click.echo(f"{name:16} {strategy:17} {v['aulc']:6.3f} ±{v['aulc_std']:.3f} {v['gain']:+7.3f} ±{v['gain_std']:.3f} "
                           f"{v['wins']:>2}/{v['seeds']:<3} {v['worst_gap']:+7.3f} (±{v['random_spread']:.3f}) "
                           f"{v['labels_to_target'] or '–':>6}  {v['verdict']}"
                           + (" (below random's spread)" if v["below_spread"] else ""))
        paths = simulation.write_suite_outputs(result, out)
        click.echo(f"wrote {', '.join(paths)}")
        return
    x, y = simulation.manifest_dataset(manifest) if manifest else simulation.digits_dataset()
    result = simulation.simulate(x, y, plan, echo=echo)
    summary = result["summary"]
    names = list(summary)
    click.echo(f"{'labels':>7} " + " ".join(f"{n:>17}" for n in names))
    for row, labels in enumerate(summary[names[0]]["labels"]):
        click.echo(f"{labels:7d} " + " ".join(f"{summary[n]['mean'][row]:11.3f} ±{summary[n]['std'][row]:.3f}" for n in names))
    click.echo(f"full-data accuracy {result['full_accuracy']:.3f}; labels to reach 95% of it: "
               + ", ".join(f"{n} {summary[n]['labels_to_95pct'] or 'not reached'}" for n in names))
    csv_path, png_path = simulation.write_outputs(result, out)
    click.echo(f"wrote {csv_path} and {png_path}")


commands = [simulate_command]
