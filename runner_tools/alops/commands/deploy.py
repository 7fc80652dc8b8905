"""`alops serve` and `alops deploy`: the champion answers requests, and release branches deploy it."""

from __future__ import annotations

import os

import click

from alops.core.project import Project

# a quiet endpoint's rows must still reach the intake, which takes finished logs only
ROTATE_MINUTES = click.option("--rotate-minutes", type=click.FloatRange(min=0.01), default=60.0, show_default=True,
                              help="Finish the log once its first row is this old (and on a clean stop).")


@click.command()
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port to listen on.")
@click.option("--log-dir", default="predictions", show_default=True,
              help="Where the prediction log goes (the input of `alops pool add`); '' for no capture.")
@click.option("--rotate-mb", type=click.FloatRange(min=0.001), default=64.0, show_default=True,
              help="Start a new log file past this size.")
@ROTATE_MINUTES
@click.option("--threads", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Requests scored at once (threads of this process; the model is loaded once).")
def serve(model, host, port, log_dir, rotate_mb, rotate_minutes, threads) -> None:
    """Serve an MLflow model in process (uvicorn) with prediction capture and metrics, until stopped.

    MODEL is a local MLflow model folder or a registry URI (models:/name@champion, models:/name/3; from
    $MLFLOW_TRACKING_URI). POST /invocations takes MLflow's scoring requests; each scored sample is logged in
    LOG_DIR/predictions.jsonl; GET /metrics is for Prometheus. With ALOPS_SERVE_TOKEN set, `alops deploy
    --target serve` can stage, test and swap in a new version here (blue/green); with ALOPS_SERVE_INVOKE_TOKEN
    set, /invocations needs it as a bearer token. An alias no version has yet (before the first release)
    starts the server empty, for the first deploy. SIGTERM finishes the requests in flight and the log.

    \b
    Examples:
      alops serve models:/digits@champion --host 0.0.0.0 --port 8080
      curl -d @model/serving_input_example.json -H 'Content-Type: application/json' localhost:8080/invocations
    """
    from alops.serve.server import serve as serve_model

    serve_model(model, host, port, log_dir or None, int(rotate_mb * (1 << 20)), threads, rotate_minutes * 60,
                ready=lambda address, live: click.echo(
                    f"serve: {model} at {address}" + (f", logging to {log_dir}/" if log_dir else "")
                    + ("" if live else " (no version has that alias yet: the first `alops deploy` brings one)")))


@click.command()
@click.option("--target", type=click.Choice(["serve", "kserve", "command"]), default="serve", show_default=True,
              envvar="ALOPS_DEPLOY_TARGET", help="Where the model goes.")
@click.option("--model", metavar="NAME", help="Registered model name; default: the project name.")
@click.option("--version", "version", metavar="N", help="Version to deploy; default: the `challenger` alias.")
@click.option("--record", metavar="FILE", help="Deploy the version of this release record (release.json), as CI "
              "jobs do: a re-run (GitLab's environment rollback) deploys the same version again.")
@click.option("--environment", default="production", show_default=True, envvar="ALOPS_ENVIRONMENT",
              help="Environment name (recorded on the version, given to the command target).")
@click.option("--endpoint", metavar="URL", envvar="ALOPS_DEPLOY_ENDPOINT",
              help="serve: the `alops serve` address; kserve/command: where to smoke-test after the deploy.")
@click.option("--smoke", metavar="FILE", envvar="ALOPS_DEPLOY_SMOKE",
              help='Smoke set, JSON {"inputs": [...], "labels": [...]}; default: smoke.json when it exists.')
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.01, show_default=True, envvar="ALOPS_DEPLOY_TOLERANCE",
              help="How far the smoke accuracy may fall below the run's metric.")
@click.option("--metric", metavar="NAME", help="The run's metric the smoke accuracy is held to; default: alops.yaml's.")
@click.option("--command", "command", metavar="SHELL", envvar="ALOPS_DEPLOY_COMMAND",
              help="command target: the team's deploy command (gets ALOPS_MODEL_URI/_NAME/_VERSION, ALOPS_ENVIRONMENT).")
@click.option("--manifest", default="inferenceservice.yaml", show_default=True, help="kserve: where the manifest is written.")
@click.option("--capture-url", metavar="URL", envvar="ALOPS_CAPTURE_URL",
              help="kserve: where the InferenceService's logger sends its events (an `alops capture` address).")
def deploy(target, model, version, record, environment, endpoint, smoke, tolerance, metric, command, manifest,
           capture_url) -> None:
    """Deploy the challenger, smoke-test it at the endpoint, then move the `champion` alias to it.

    A failed smoke test leaves the champion serving (serve target) and the alias where it was.

    \b
    Examples:
      alops release --challenger
      ALOPS_SERVE_TOKEN=... alops deploy --target serve --endpoint http://10.0.0.5:8080
      alops deploy --target kserve                  # inferenceservice.yaml; kubectl apply with a cluster context
      alops deploy --target command --command './deploy.sh'
    """
    from alops.release.deploy import deploy as deploy_model
    from alops.release.deploy import recorded_version

    if record:
        model, version, recorded_metric = recorded_version(record)
        metric = metric or recorded_metric
    with Project.open() as project:
        name, uri, primary = model or project.name, project.tracking_uri, project.config.metric
    if smoke is None and os.path.isfile("smoke.json"):
        smoke = "smoke.json"
    done = deploy_model(uri, name, target, environment, metric or (primary.name if primary else None), version,
                        endpoint, os.environ.get("ALOPS_SERVE_TOKEN"), smoke, tolerance, command, manifest,
                        echo=click.echo, capture_url=capture_url)
    tested = (f"smoke accuracy {done.smoke_accuracy:.4f} on {done.smoke_samples} samples"
              + (f" (run: {done.expected:.4f})" if done.expected is not None else "")
              if done.smoke_accuracy is not None else "no smoke test")
    click.echo(f"deploy: {done.model} version {done.version} is the champion in {done.environment} via {done.target} "
               f"({tested}; previous: {done.previous or 'none'})")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", type=click.IntRange(0, 65535), default=8081, show_default=True, help="Port to listen on.")
@click.option("--log-dir", default="predictions", show_default=True, help="Where the prediction log goes.")
@click.option("--rotate-mb", type=click.FloatRange(min=0.001), default=64.0, show_default=True,
              help="Start a new log file past this size.")
@ROTATE_MINUTES
@click.option("--pending-mb", type=click.FloatRange(min=0.001), default=256.0, show_default=True,
              help="Event halves waiting for their pair, all together; past it (or 5 minutes) the oldest are "
                   "dropped and counted.")
def capture(host, port, log_dir, rotate_mb, rotate_minutes, pending_mb) -> None:
    """Receive a KServe InferenceService's logger events into the prediction log, until interrupted.

    Point the InferenceService's `spec.predictor.logger` (mode: all) at this address (`alops deploy --target
    kserve --capture-url URL` writes it): each request and response pair becomes the rows `alops serve`
    writes, in LOG_DIR/predictions.jsonl, for `alops pool add`.

    \b
    Example:
      alops capture --host 0.0.0.0 --port 8081 --log-dir predictions
    """
    from alops.serve.events import serve_events

    serve_events(log_dir, host, port, int(rotate_mb * (1 << 20)), rotate_minutes * 60, int(pending_mb * (1 << 20)),
                 ready=lambda address: click.echo(f"capture: KServe logger events at {address}, logging to {log_dir}/"))


@click.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path())
@click.option("--manifest", type=click.Path(dir_okay=False),
              help="A manifest whose labels judge the logged samples and whose train split is the reference mix; "
                   "default: the project's full dataset manifest, when run in a project.")
@click.option("--json", "json_path", default="monitor.json", show_default=True, help="The record, as data.")
@click.option("--plot", "plot_path", default="monitor.png", show_default=True, help="The picture ('' for none).")
@click.option("--min-accuracy", type=click.FloatRange(0, 1), help="SLO: fail when a version's live accuracy "
              "interval lies entirely below this.")
@click.option("--class-shift", is_flag=True, help="SLO: fail when a version's predicted classes moved from the "
              "training labels (chi-square test, Cramér V >= 0.1, p < 0.01).")
def monitor(logs, manifest, json_path, plot_path, min_accuracy, class_shift) -> None:
    """Per model version, from prediction logs: samples scored per hour, predicted class mix against the
    training labels, and live accuracy (95% interval) over the logged samples labelled since.

    LOGS are prediction logs or folders of them (`alops serve`/`alops capture` write them). Exit 1 when a
    declared SLO is breached, one line each.

    \b
    Examples:
      alops monitor predictions/ --plot monitor.png
      alops monitor logs/ --manifest data/full/manifest.csv --min-accuracy 0.9 --class-shift
    """
    import json

    from alops.core.files import atomic_write
    from alops.serve.monitor import plot, read_logs

    if manifest is None and os.path.isfile("alops.yaml"):
        with Project.open() as project:
            candidate = project.manifest("full")
            manifest = candidate if os.path.isfile(candidate) else None
    record = read_logs(list(logs), manifest)
    atomic_write(json_path, json.dumps(record.as_dict(), indent=1, sort_keys=True) + "\n")
    if plot_path:
        plot(record, plot_path)
    for name, version in sorted(record.versions.items()):
        accuracy = version.accuracy
        live = (f"live accuracy {accuracy[0]:.3f} (95% {accuracy[1]:.3f}-{accuracy[2]:.3f}, {version.labelled} labelled)"
                if accuracy else "no labelled sample yet")
        shift = f"; classes {version.shift.summary('Cramér V')}" if version.shift else ""
        click.echo(f"monitor: version {name}: {version.rows} samples, {version.first} to {version.last}; {live}{shift}")
    if record.unreadable:
        click.echo(f"monitor: {record.unreadable} unreadable line(s) skipped", err=True)
    breaches = record.breaches(min_accuracy, class_shift)
    for line in breaches:
        click.echo(f"monitor: SLO breached: {line}", err=True)
    click.echo(f"monitor: {len(record.versions)} version(s) in {record.logs} log(s); {json_path}"
               + (f", {plot_path}" if plot_path else ""))
    if breaches:
        raise SystemExit(1)


commands = [serve, deploy, capture, monitor]
