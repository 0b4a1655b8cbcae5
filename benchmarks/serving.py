"""``zoo serve`` under load, on loopback only, against LitServe: throughput and latency, then a soak.

Three servers, each a process of its own, answer POST /v1/models/NAME/predict (JSON inputs, top-5),
each computing with one torch thread (``OMP_NUM_THREADS=1``):

- zoo: ``zoo serve`` (dynamic batches of up to 64, 2 ms to fill);
- litserve: LitServe with the same batching (max_batch_size 64, batch_timeout 2 ms), its LitAPI
  calling the same code as zoo predict (decode -> batch -> forward -> unbatch -> encode);
- per-request: a minimal FastAPI endpoint calling ``zoo.use.predict.predict``, the model once per
  request.

Each is measured on asyncio's own event loop and on uvloop (``--loop``; uvicorn's ``loop`` setting for
the others): the plain ``serve`` extra has no uvloop. Clients are asyncio tasks in this process
(aiohttp: httpx's async pool, not the servers, was the bottleneck at 64 connections), each sending
its next request when the last is answered, for ``--seconds`` at 1, 16 and 64 clients, for mnist-mlp
(a 28x28 digit) and transformer-encoder-reverse (12 token ids). Then the soak: ``--soak`` requests at
32 clients against zoo serve with 5% malformed ones mixed in: no 5xx, every malformed one a 4xx,
every well-formed answer equal to ``zoo.predict`` on the same input, and the server's RSS after
warm-up (the first tenth) within 10% of its RSS at the end (checked from 10,000 requests on); the
script fails otherwise. Needs the ``bench`` extra (LitServe, uvloop, aiohttp).

    python benchmarks/serving.py [--seconds 5] [--soak 20000]

Last line: ``serving: zoo/litserve at least X.XX (asyncio) Y.YY (uvloop), zoo p99/p50 at most Z.Z``:
the smallest ratio of requests per second over both models and 1, 16 and 64 clients, and the largest
ratio of zoo serve's p99 to its p50.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import numpy as np

MODELS = ("mnist-mlp", "transformer-encoder-reverse")
CLIENTS = (1, 16, 64)
LOOPS = ("asyncio", "uvloop")
SERVERS = ("zoo", "litserve", "per-request")

PER_REQUEST = r"""
import sys
import uvicorn
from fastapi import FastAPI
import zoo
from zoo.use.predict import facts, predict as run

app = FastAPI()
registry = zoo.default_registry()
port, loop, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
models = {name: zoo.load(name) for name in names}
known = {name: facts(model, registry) for name, model in models.items()}

@app.post("/v1/models/{name}/predict")
def predict(name: str, body: dict):
    return run(models[name], body["inputs"], top_k=body.get("top_k", 5), known=known[name])

@app.get("/health")
def health():
    return "ok"

uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop)
"""

LITSERVE = r"""
import sys
import torch
import litserve as ls
import zoo
from zoo.use.predict import facts, forward, interpret, prepare

class Zoo(ls.LitAPI):
    def __init__(self, name):
        super().__init__(max_batch_size=64, batch_timeout=0.002, api_path=f"/v1/models/{name}/predict")
        self.name = name

    def setup(self, device):
        self.model = zoo.load(self.name)
        self.known = facts(self.model, zoo.default_registry())

    def decode_request(self, request):
        return prepare(request["inputs"], self.known.spec)[0]

    def batch(self, inputs):
        return torch.stack(inputs)

    def predict(self, x):
        return interpret(forward(self.model, x, self.known), x, 5, self.known)

    def unbatch(self, output):
        return output

    def encode_response(self, output):
        return [output]

if __name__ == "__main__":  # LitServe spawns its workers, which import this file
    port, loop, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    server = ls.LitServer([Zoo(name) for name in names], accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, log_level="warning", generate_client_file=False, num_api_servers=1,
               loop=loop)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kind: str, loop: str, scratch: Path) -> tuple[subprocess.Popen, str]:
    """A server process of ``kind`` on a free loopback port (its script, if any, written in ``scratch``),
    and its base URL once it answers."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    port = free_port()
    if kind == "zoo":
        command = [sys.executable, "-m", "zoo", "serve", *MODELS, "--port", str(port), "--max-queue", "100000",
                   "--timeout", "600", "--loop", loop]
    else:
        script = scratch / f"{kind}_server.py"  # not litserve.py, which would hide the package
        script.write_text(LITSERVE if kind == "litserve" else PER_REQUEST)
        command = [sys.executable, str(script), str(port), loop, *MODELS]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    health = f"{url}/v2/health/ready" if kind == "zoo" else f"{url}/health"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the {kind} server ({loop}) exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(health, timeout=2) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.25)
    process.kill()
    raise SystemExit(f"the {kind} server ({loop}) did not answer in 120 s")


def inputs(count: int, seed: int = 0) -> dict[str, list]:
    """``count`` distinct inputs for each model: real MNIST digits, random token sequences."""
    import zoo

    images, _ = zoo.create("mnist", split="test").tensors()
    rng = random.Random(seed)
    return {"mnist-mlp": [images[i, 0].tolist() for i in range(count)],
            "transformer-encoder-reverse": [[rng.randrange(2, 16) for _ in range(12)] for _ in range(count)]}


def session(url: str, clients: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(url, connector=aiohttp.TCPConnector(limit=clients),
                                 timeout=aiohttp.ClientTimeout(total=120))


async def post(http: aiohttp.ClientSession, path: str, body: bytes) -> tuple[int, bytes]:
    async with http.post(path, data=body, headers={"content-type": "application/json"}) as response:
        return response.status, await response.read()


async def load(url: str, model: str, samples: list, clients: int, seconds: float) -> dict:
    """Requests per second and p50/p99 latency (ms) of ``clients`` closed-loop clients."""
    latencies: list[float] = []
    failures = 0
    bodies = [json.dumps({"inputs": sample}).encode() for sample in samples]
    deadline = time.perf_counter() + seconds
    async with session(url, clients) as http:
        async def client(k: int):
            nonlocal failures
            i = k
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                status, _ = await post(http, f"/v1/models/{model}/predict", bodies[i % len(bodies)])
                latencies.append(time.perf_counter() - sent)
                failures += status != 200
                i += clients

        started = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{failures} requests failed under load")
    ordered = sorted(latencies)
    return {"rps": len(latencies) / elapsed, "p50": 1000 * statistics.median(ordered),
            "p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]}


MALFORMED = [
    ("mnist-mlp", b"{not json"),
    ("mnist-mlp", json.dumps({"inputs": [[1, 2, 3]]}).encode()),
    ("mnist-mlp", json.dumps({"inputs": [[[999] * 28] * 28]}).encode()),
    ("transformer-encoder-reverse", json.dumps({"inputs": [3, 10**6]}).encode()),
    ("transformer-encoder-reverse", json.dumps({"input": [3, 5]}).encode()),
    ("nope", json.dumps({"inputs": [1]}).encode()),
]


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def soak(url: str, pid: int, samples: dict[str, list], expected: dict[str, list], total: int,
               clients: int = 32) -> dict:
    """``total`` requests, 5% malformed, at ``clients``; what came back, checked."""
    rng = random.Random(1)
    plan = [("bad", rng.randrange(len(MALFORMED))) if rng.random() < 0.05 else
            (rng.choice(MODELS), rng.randrange(len(samples["mnist-mlp"]))) for _ in range(total)]
    counts = {"2xx": 0, "4xx": 0, "5xx": 0, "bad_not_4xx": 0, "wrong_answers": 0}
    warm: list[int] = []
    next_item = 0
    async with session(url, clients) as http:
        async def client():
            nonlocal next_item
            while next_item < total:
                kind, i = plan[next_item]
                next_item += 1
                if next_item == total // 10:
                    warm.append(rss_kb(pid))
                if kind == "bad":
                    model, body = MALFORMED[i]
                    status, _ = await post(http, f"/v1/models/{model}/predict", body)
                    counts["bad_not_4xx"] += not 400 <= status < 500
                else:
                    status, answer = await post(http, f"/v1/models/{kind}/predict",
                                                json.dumps({"inputs": samples[kind][i]}).encode())
                    if status == 200:
                        counts["wrong_answers"] += not same(json.loads(answer)[0], expected[kind][i])
                counts[f"{status // 100}xx"] += 1

        await asyncio.gather(*(client() for _ in range(clients)))
    return {**counts, "rss_warm_mb": warm[0] / 1024, "rss_end_mb": rss_kb(pid) / 1024}


def same(got: dict, want: dict) -> bool:
    if "top" in want:
        return [t["label"] for t in got["top"]] == [t["label"] for t in want["top"]] and np.allclose(
            [t["probability"] for t in got["top"]], [t["probability"] for t in want["top"]], atol=1e-6)
    return got["tokens"] == want["tokens"] and np.allclose(got["probabilities"], want["probabilities"], atol=1e-6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per measurement (default 5)")
    parser.add_argument("--soak", type=int, default=20000, help="requests in the soak (default 20000)")
    args = parser.parse_args()
    import torch

    import zoo

    torch.set_num_threads(1)  # the clients' own work stays on one core
    samples = inputs(100)
    expected = {name: zoo.predict(name, np.array(samples[name], np.uint8)[:, None] if name == "mnist-mlp"
                                  else samples[name]) for name in MODELS}
    results: dict[tuple[str, str, str, int], dict] = {}
    scratch = tempfile.TemporaryDirectory(prefix="zoo-bench-")
    for loop in LOOPS:
        for kind in SERVERS:
            process, url = start(kind, loop, Path(scratch.name))
            try:
                for model in MODELS:
                    asyncio.run(load(url, model, samples[model], 16, min(1.0, args.seconds)))  # warm-up
                    for clients in CLIENTS:
                        results[loop, kind, model, clients] = r = asyncio.run(
                            load(url, model, samples[model], clients, args.seconds))
                        print(f"{loop:8} {kind:12} {model:28} {clients:3} clients: {r['rps']:7.1f} req/s  "
                              f"p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms", flush=True)
                if kind == "zoo" and loop == "asyncio":
                    checked = asyncio.run(soak(url, process.pid, samples, expected, args.soak))
            finally:
                process.terminate()
                process.wait(timeout=60)
    print(f"soak of {args.soak:,} requests at 32 clients, 5% malformed: {checked['2xx']:,} 2xx, {checked['4xx']:,} "
          f"4xx, {checked['5xx']} 5xx; malformed answered other than 4xx: {checked['bad_not_4xx']}; answers unlike "
          f"zoo.predict: {checked['wrong_answers']}; RSS {checked['rss_warm_mb']:.0f} MB after warm-up, "
          f"{checked['rss_end_mb']:.0f} MB at the end ({checked['rss_end_mb'] / checked['rss_warm_mb']:.2f}x)")
    growth = checked["rss_end_mb"] / checked["rss_warm_mb"]
    if checked["5xx"] or checked["bad_not_4xx"] or checked["wrong_answers"] or (args.soak >= 10000 and growth > 1.10):
        raise SystemExit("the soak failed: 5xx answers, malformed requests not answered 4xx, answers unlike "
                         "zoo.predict, or RSS grew more than 10% after warm-up")
    least = {}
    for loop in LOOPS:
        ratios = {(model, clients): results[loop, "zoo", model, clients]["rps"]
                  / results[loop, "litserve", model, clients]["rps"] for model in MODELS for clients in CLIENTS}
        least[loop] = min(ratios.values())
        print(f"{loop}: zoo/litserve " + ", ".join(f"{model} {clients}: {ratio:.2f}"
                                                  for (model, clients), ratio in ratios.items()))
        print(f"{loop}: zoo/per-request at 64 clients " + ", ".join(
            f"{model} {results[loop, 'zoo', model, 64]['rps'] / results[loop, 'per-request', model, 64]['rps']:.2f}"
            for model in MODELS))
    tail = max(r["p99"] / r["p50"] for (loop, kind, _, _), r in results.items() if kind == "zoo")
    print(f"serving: zoo/litserve at least {least['asyncio']:.2f} (asyncio) {least['uvloop']:.2f} (uvloop), "
          f"zoo p99/p50 at most {tail:.1f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
