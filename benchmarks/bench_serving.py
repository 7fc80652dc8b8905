"""The serving path: requests per second and latency (p50, p99) of one MLflow pytorch model (digits-sized: 8x8
images, 10 classes) answered by `mlflow models serve` (the baseline), by `alops serve` with prediction capture,
and by MLServer with mlserver-mlflow (what KServe runs; when ALOPS_BENCH_MLSERVER names its `mlserver`
executable), at 1, 4 and 16 clients and 1 and 32 images per request, the servers interleaved round by round.

Target: `alops serve` with capture reaches >= 0.9x `mlflow models serve`'s requests per second and <= 1.2x its p99
at every concurrency. Also checked: every scored image is logged exactly once.

    python benchmarks/bench_serving.py
    ALOPS_BENCH_MLSERVER=/path/to/venv/bin/mlserver python benchmarks/bench_serving.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

CLIENTS = [int(n) for n in os.environ.get("ALOPS_BENCH_CLIENTS", "1,4,16").split(",")]
ROWS = [int(n) for n in os.environ.get("ALOPS_BENCH_ROWS", "1,32").split(",")]
SECONDS = float(os.environ.get("ALOPS_BENCH_SECONDS", 4))  # per measurement
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
MLSERVER = os.environ.get("ALOPS_BENCH_MLSERVER")
ALOPS = str(Path(sys.executable).with_name("alops"))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_model(folder: Path) -> None:
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    example = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    signature = infer_signature(example, net(torch.from_numpy(example)).detach().numpy())
    mlflow.pytorch.save_model(net, str(folder), signature=signature, serialization_format="pickle")


def images(count: int) -> list:
    import numpy as np

    return np.random.default_rng(count).random((count, 1, 8, 8), dtype=np.float32).round(3).tolist()


def v2_body(count: int) -> dict:
    flat = [v for image in images(count) for row in image[0] for v in row]
    return {"inputs": [{"name": "input-0", "shape": [count, 1, 8, 8], "datatype": "FP32", "data": flat}]}


def wait(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {process.args}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SystemExit(f"no answer from {url}")


def load(url: str, body: bytes, clients: int) -> tuple[float, list[float]]:
    """(requests per second, latencies in ms) of `clients` threads sending for SECONDS."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + SECONDS

    def client():
        own = []
        with requests.Session() as session:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                answer = session.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=60)
                own.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, answer.text[:200]
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mlserver_folder(work: Path, model: Path, port: int) -> Path:
    folder = work / "mlserver"
    (folder / "digits").mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                                      "metrics_port": free_port(), "parallel_workers": 0}))
    (folder / "digits/model-settings.json").write_text(json.dumps({
        "name": "digits", "implementation": "mlserver_mlflow.MLflowRuntime", "parameters": {"uri": str(model)}}))
    return folder


def main() -> int:
    scripts = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    with tempfile.TemporaryDirectory() as work_folder:
        work = Path(work_folder)
        model = work / "model"
        save_model(model)
        mlflow_port, alops_port, plain_port = free_port(), free_port(), free_port()
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        servers = [
            ("mlflow models serve", subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model), "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(mlflow_port)], env=env, start_new_session=True, **quiet),
             f"http://127.0.0.1:{mlflow_port}", "/ping", "/invocations", False),
            ("alops serve, capture", subprocess.Popen(
                [ALOPS, "serve", str(model), "--port", str(alops_port), "--log-dir", str(work / "logs")],
                cwd=work, env=env, **quiet), f"http://127.0.0.1:{alops_port}", "/health", "/invocations", False),
            ("alops serve, no capture", subprocess.Popen(
                [ALOPS, "serve", str(model), "--port", str(plain_port), "--log-dir", ""],
                cwd=work, env=env, **quiet), f"http://127.0.0.1:{plain_port}", "/health", "/invocations", False),
        ]
        if MLSERVER:
            port = free_port()
            servers.append(("MLServer (mlserver-mlflow)", subprocess.Popen(
                [MLSERVER, "start", str(mlserver_folder(work, model, port))], start_new_session=True, **quiet),
                f"http://127.0.0.1:{port}", "/v2/models/digits/ready", "/v2/models/digits/infer", True))
        results: dict[tuple[str, int, int], list[tuple[float, list[float]]]] = {}
        try:
            for _name, process, url, ready, *_ in servers:
                wait(url + ready, process)
            for rows in ROWS:
                bodies = {False: json.dumps({"inputs": images(rows)}).encode(), True: json.dumps(v2_body(rows)).encode()}
                for clients in CLIENTS:
                    for _ in range(REPEATS):  # interleaved: drift in the machine's load touches every server alike
                        for name, _process, url, _ready, path, v2 in servers:
                            results.setdefault((name, rows, clients), []).append(load(url + path, bodies[v2], clients))
            scored = sum(rows * len(latencies) for (name, rows, _), rounds in results.items()
                         if name == "alops serve, capture" for _, latencies in rounds)
            dropped = requests.get(servers[1][2] + "/alops/status", timeout=10).json()["capture"]
        finally:
            for _name, process, *_ in servers:
                process.terminate()
                process.wait(120)  # alops serve drains its capture queue and finishes the log first
        logged = sum(1 for log in (work / "logs").glob("predictions*.jsonl") for _ in open(log))
    print(f"{SECONDS:.0f} s per measurement, {REPEATS} interleaved rounds; median requests/s, p50/p99 over the rounds")
    print(f"{'server':<28} {'images':>6} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x mlflow':>9} {'p99 x':>6}")
    missed = []
    for (name, rows, clients), rounds in results.items():
        rate = statistics.median(r for r, _ in rounds)
        latencies = [v for _, values in rounds for v in values]
        base_rounds = results[("mlflow models serve", rows, clients)]
        base_rate = statistics.median(r for r, _ in base_rounds)
        base_p99 = percentile([v for _, values in base_rounds for v in values], 0.99)
        ratio, p99_ratio = rate / base_rate, percentile(latencies, 0.99) / base_p99
        print(f"{name:<28} {rows:>6} {clients:>7} {rate:>8.0f} {percentile(latencies, 0.5):>8.1f} "
              f"{percentile(latencies, 0.99):>8.1f} {ratio:>8.2f}x {p99_ratio:>5.2f}x")
        if name == "alops serve, capture" and (ratio < 0.9 or p99_ratio > 1.2):
            missed.append(f"{rows} image(s), {clients} client(s): {ratio:.2f}x req/s, {p99_ratio:.2f}x p99")
    print(f"images logged by alops serve: {logged} of {scored}; capture's counters at the end of the load: {dropped}")
    print("target (>= 0.9x req/s, <= 1.2x p99 of mlflow models serve): "
          + ("met everywhere" if not missed else "missed at " + "; ".join(missed)))
    return 0 if logged == scored and not missed else 1


if __name__ == "__main__":
    sys.exit(main())
