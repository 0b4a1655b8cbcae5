"""``zoo serve`` under load, on loopback only: throughput and latency, then a soak.

Three servers, each a process of its own, answer POST /v1/models/NAME/predict (JSON inputs, top-5):

- batched: ``zoo serve`` (dynamic batches of up to 64, 5 ms to fill);
- unbatched: ``zoo serve --max-batch-size 1``;
- per-request: a minimal FastAPI endpoint calling ``zoo.use.predict.predict`` -- the model once per
  request, the same preprocessing (the comparison LitServe publishes).

Clients are asyncio tasks in this process (aiohttp: httpx's async pool, not the servers, was the
bottleneck at 64 connections), each sending its next request when the last is
answered, for ``--seconds`` at 1, 8 and 64 clients, for mnist-mlp (a 28x28 digit) and
transformer-encoder-reverse (12 token ids). Then the soak: ``--soak`` requests at 32 clients against
the batched server with 5% malformed ones mixed in: no 5xx, every malformed one a 4xx, every
well-formed answer equal to ``zoo.predict`` on the same input, and the server's RSS after warm-up
(the first tenth) within 10% of its RSS at the end (checked from 10,000 requests on); the script
fails otherwise.

    python benchmarks/serving.py [--seconds 5] [--soak 20000]

Last line: ``serving: batched/unbatched X.XX at 64 clients (encoder)``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time

import aiohttp
import numpy as np

MODELS = ("mnist-mlp", "transformer-encoder-reverse")
CLIENTS = (1, 8, 64)

PER_REQUEST = r"""
import sys
import uvicorn
from fastapi import FastAPI, Request
import zoo
from zoo.use.predict import facts, predict as run

app = FastAPI()
registry = zoo.default_registry()
models = {name: zoo.load(name) for name in sys.argv[1:]}
known = {name: facts(model, registry) for name, model in models.items()}

@app.post("/v1/models/{name}/predict")
def predict(name: str, body: dict):
    return run(models[name], body["inputs"], top_k=body.get("top_k", 5), known=known[name])

config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
server = uvicorn.Server(config)
import socket
sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen(2048)
print(f"zoo serve: http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
server.run(sockets=[sock])
"""


def start(kind: str) -> tuple[subprocess.Popen, str]:
    """A server process of ``kind`` on a free loopback port, and its base URL once it answers."""
    if kind == "per-request":
        command = [sys.executable, "-c", PER_REQUEST, *MODELS]
    else:
        command = [sys.executable, "-m", "zoo", "serve", *MODELS, "--port", "0", "--max-queue", "100000",
                   "--timeout", "600", *(["--max-batch-size", "1"] if kind == "unbatched" else [])]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if not line.startswith("zoo serve: http://127.0.0.1:"):
        process.kill()
        raise SystemExit(f"the {kind} server did not start: {line!r}")
    return process, line.split()[2].rstrip("/")


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
    expected = {name: zoo.predict(name, samples[name] if name != "mnist-mlp" else np.array(samples[name], np.uint8)[:, None])
                for name in MODELS}
    results: dict[tuple[str, str, int], dict] = {}
    for kind in ("batched", "unbatched", "per-request"):
        process, url = start(kind)
        try:
            for model in MODELS:
                asyncio.run(load(url, model, samples[model], 1, min(1.0, args.seconds)))  # warm-up
                for clients in CLIENTS:
                    results[kind, model, clients] = r = asyncio.run(load(url, model, samples[model], clients,
                                                                         args.seconds))
                    print(f"{kind:12} {model:28} {clients:3} clients: {r['rps']:7.1f} req/s  "
                          f"p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms", flush=True)
            if kind == "batched":
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
    for model in MODELS:
        top = results["batched", model, 64]["rps"]
        print(f"{model}: at 64 clients batched/unbatched {top / results['unbatched', model, 64]['rps']:.2f}, "
              f"batched/per-request {top / results['per-request', model, 64]['rps']:.2f}")
    encoder = "transformer-encoder-reverse"
    ratio = results["batched", encoder, 64]["rps"] / results["unbatched", encoder, 64]["rps"]
    print(f"serving: batched/unbatched {ratio:.2f} at 64 clients (encoder)")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
