"""The serving path: requests per second and latency (p50, p99) of an MLflow pytorch model (digits-sized: 64
features, 10 classes) answered by MLflow's scoring server directly (the baseline), and through `alops serve`
without and with prediction capture, measured in the same run with the same clients.

Target: capture costs under 10% of `alops serve`'s throughput without it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

CLIENTS = int(os.environ.get("ALOPS_BENCH_CLIENTS", 8))
REQUESTS = int(os.environ.get("ALOPS_BENCH_REQUESTS", 250))  # per client
ROWS = int(os.environ.get("ALOPS_BENCH_ROWS", 1))  # samples per request
REPEATS = int(os.environ.get("ALOPS_BENCH_REPEATS", 3))
ALOPS = str(Path(sys.executable).with_name("alops"))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_model(folder: Path):
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    example = np.random.default_rng(0).random((ROWS, 64), dtype=np.float32)
    signature = infer_signature(example, net(torch.from_numpy(example)).detach().numpy())
    mlflow.pytorch.save_model(net, str(folder), signature=signature, serialization_format="pickle")
    return example.tolist()


def wait(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 180
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


def load(url: str, body: dict) -> tuple[float, list[float]]:
    """(requests per second, latencies in ms) of CLIENTS threads sending REQUESTS each."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client():
        own = []
        with requests.Session() as session:
            for _ in range(REQUESTS):
                start = time.perf_counter()
                answer = session.post(url, json=body, timeout=60)
                own.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200, answer.text[:200]
        with lock:
            latencies.extend(own)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(latencies) / (time.perf_counter() - start), latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    scripts = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}
    with tempfile.TemporaryDirectory() as work:
        model = Path(work) / "model"
        body = {"inputs": save_model(model)}
        direct_port, plain_port, capture_port = free_port(), free_port(), free_port()
        servers = [
            ("MLflow scoring server", subprocess.Popen(
                [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model), "--env-manager", "local",
                 "-h", "127.0.0.1", "-p", str(direct_port)], env=env, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True), direct_port, "/ping"),
            ("alops serve, no capture", subprocess.Popen(
                [ALOPS, "serve", str(model), "--port", str(plain_port), "--log-dir", ""], cwd=work, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), plain_port, "/health"),
            ("alops serve, capture", subprocess.Popen(
                [ALOPS, "serve", str(model), "--port", str(capture_port), "--log-dir", str(Path(work) / "logs")],
                cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), capture_port, "/health"),
        ]
        try:
            for _name, process, port, health in servers:
                wait(f"http://127.0.0.1:{port}{health}", process)
            results: dict[str, list[tuple[float, list[float]]]] = {name: [] for name, *_ in servers}
            for _ in range(REPEATS):  # interleaved, so drift in the machine's load touches all three alike
                for name, _process, port, _health in servers:
                    results[name].append(load(f"http://127.0.0.1:{port}/invocations", body))
            logged = sum(1 for log in (Path(work) / "logs").glob("predictions*.jsonl") for _ in open(log))
        finally:
            for _name, process, *_ in servers:
                process.terminate()
                process.wait(30)
    print(f"{CLIENTS} clients x {REQUESTS} requests of {ROWS} row(s), {REPEATS} rounds; median of the rounds")
    print(f"{'server':<26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    medians = {}
    for name, rounds in results.items():
        rate = statistics.median(r for r, _ in rounds)
        latencies = [v for _, values in rounds for v in values]
        medians[name] = rate
        print(f"{name:<26} {rate:>8.0f} {percentile(latencies, 0.5):>8.1f} {percentile(latencies, 0.99):>8.1f}")
    cost = 1 - medians["alops serve, capture"] / medians["alops serve, no capture"]
    front = medians["alops serve, no capture"] / medians["MLflow scoring server"]
    print(f"capture costs {cost:.1%} of alops serve's throughput (target < 10%); alops serve without capture "
          f"reaches {front:.2f}x the scoring server's own")
    expected = REPEATS * CLIENTS * REQUESTS * ROWS
    print(f"rows logged: {logged} of {expected}")
    return 0 if logged == expected else 1


if __name__ == "__main__":
    sys.exit(main())
