"""zoo serve: real servers on free loopback ports, talked to over HTTP -- the Open Inference Protocol
through tritonclient, the JSON API through httpx, the page through Chromium -- answering what zoo
predict answers, swapping builds under a stream of requests, shedding load and draining on SIGTERM."""

import contextlib
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import REGRESSION, run_zoo

import zoo

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
from zoo_serve.app import bind, create  # noqa: E402
from zoo_serve.connections import OncePerInterval, server_config  # noqa: E402
from zoo_serve.specs import Access, Limits  # noqa: E402
from zoo_serve.models import open_slot  # noqa: E402

LIFETIME = 300  # seconds a test's server lives at most, whatever the test does


def serving(*models: str, registry=None, access=Access(), **limits):
    registry = registry or zoo.Registry.from_environment()
    slots = [open_slot(m, registry) for m in models]
    bounds = Limits(**limits)
    return background(create(slots, registry, bounds, follow_every=0.1, access=access), bounds)


@contextlib.contextmanager
def background(app, limits: Limits):
    """Serve ``app`` on a free port of 127.0.0.1 from a thread of this process, with the connection
    settings of zoo serve for ``limits``, while the block runs (at most LIFETIME seconds); yields its
    base URL."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, **server_config(limits)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    stop = threading.Timer(LIFETIME, lambda: setattr(server, "should_exit", True))
    stop.daemon = True
    stop.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.cancel()
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Eight MNIST test digits: their pixels, PNG files of them, and what zoo predict says of them."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("digits")
    images, labels = zoo.create("mnist", split="test").tensors()
    pixels = images[:8].numpy()
    paths = []
    for i, image in enumerate(pixels):
        paths.append(folder / f"{i}.png")
        Image.fromarray(image[0]).save(paths[-1])
    Image.fromarray(pixels[0, 0]).resize((200, 150)).convert("RGB").save(folder / "big.jpg")
    np.save(folder / "one.npy", pixels[1, 0])
    result = run_zoo("predict", "mnist-mlp", *map(str, paths), "--json", "--top-k", "5")
    assert result.returncode == 0, result.stderr
    return pixels, paths, json.loads(result.stdout)


@pytest.fixture(scope="module")
def server():
    with serving("mnist-mlp", "transformer-encoder-reverse", batch_timeout_ms=20) as url:
        yield url


def same_predictions(got: list[dict], expected: list[dict]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert [t["label"] for t in g["top"]] == [t["label"] for t in e["top"]]
        assert [t["probability"] for t in g["top"]] == pytest.approx([t["probability"] for t in e["top"]], abs=1e-6)


# --- the Open Inference Protocol, through a real client ---

def test_v2_through_tritonclient_answers_what_zoo_predict_does(server, digits):
    import tritonclient.http as triton

    pixels, _, expected = digits
    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("mnist-mlp")
    meta = client.get_model_metadata("mnist-mlp")
    assert meta["inputs"] == [{"name": "input", "datatype": "UINT8", "shape": [-1, 1, 28, 28]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 10]}]
    for binary in (True, False):  # the binary tensor extension (tritonclient's default) and plain JSON
        tensor = triton.InferInput("input", list(pixels.shape), "UINT8")
        tensor.set_data_from_numpy(pixels, binary_data=binary)
        outputs = [triton.InferRequestedOutput("output", binary_data=binary)]
        result = client.infer("mnist-mlp", [tensor], outputs=outputs, request_id="r1")
        probabilities = torch.tensor(result.as_numpy("output")).softmax(-1)
        assert probabilities.shape == (8, 10)
        top = probabilities.topk(5)
        assert [[str(i) for i in row] for row in top.indices.tolist()] == [
            [t["label"] for t in e["top"]] for e in expected]
        assert top.values.flatten().tolist() == pytest.approx(
            [t["probability"] for e in expected for t in e["top"]], abs=1e-6)
        assert result.get_response()["id"] == "r1"


def test_v2_token_model_and_server_metadata(server):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.removeprefix("http://"))
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("transformer-encoder-reverse")
    [spec] = meta["inputs"]
    assert spec["datatype"] == "INT64" and spec["shape"][0] == -1
    length = spec["shape"][1]
    ids = np.zeros((2, length), dtype=np.int64)
    ids[0, :6] = [3, 5, 7, 9, 11, 13]
    ids[1, :4] = [2, 4, 6, 8]
    tensor = triton.InferInput("input", list(ids.shape), "INT64")
    tensor.set_data_from_numpy(ids)
    out = client.infer("transformer-encoder-reverse", [tensor]).as_numpy("output")
    expected = zoo.predict("transformer-encoder-reverse", [[3, 5, 7, 9, 11, 13], [2, 4, 6, 8]])
    assert out.argmax(-1)[0, :6].tolist() == expected[0]["tokens"] == [13, 11, 9, 7, 5, 3]
    assert out.argmax(-1)[1, :4].tolist() == expected[1]["tokens"]


# --- zoo's own API ---

def test_v1_predict_takes_what_zoo_predict_takes(server, digits):
    pixels, paths, expected = digits
    with httpx.Client(base_url=server, timeout=30) as http:
        for path, want in zip(paths[:3], expected):
            response = http.post("/v1/models/mnist-mlp/predict", files={"file": (path.name, path.read_bytes())})
            assert response.status_code == 200, response.text
            [got] = response.json()
            assert got["input"] == path.name
            same_predictions([got], [want])
        big = paths[0].parent / "big.jpg"  # any size, any mode: converted and resized as zoo predict does
        response = http.post("/v1/models/mnist-mlp/predict", files={"file": ("big.jpg", big.read_bytes())})
        cli = json.loads(run_zoo("predict", "mnist-mlp", str(big), "--json", "--top-k", "5").stdout)
        same_predictions(response.json(), cli)
        npy = (paths[0].parent / "one.npy").read_bytes()
        response = http.post("/v1/models/mnist-mlp/predict?top_k=2", files={"file": ("one.npy", npy)})
        same_predictions(response.json(), [{"top": expected[1]["top"][:2]}])
        response = http.post("/v1/models/mnist-mlp/predict", json={"inputs": pixels[:4].tolist(), "top_k": 5})
        same_predictions(response.json(), expected[:4])
        assert response.headers["x-zoo-model-version"] == http.get("/v1/models").json()[0]["version"]
        tokens = http.post("/v1/models/transformer-encoder-reverse/predict", json={"inputs": [3, 5, 7, 9]}).json()
        assert tokens[0]["tokens"] == [9, 7, 5, 3] and len(tokens[0]["probabilities"]) == 4


def test_v1_models_card_and_metrics(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        models = {m["name"]: m for m in http.get("/v1/models").json()}
        mlp = models["mnist-mlp"]
        assert mlp["sha256"] == zoo.load("mnist-mlp").zoo_source.sha256
        assert mlp["labels"] == [str(i) for i in range(10)] and mlp["input"]["shape"] == [1, 28, 28]
        assert mlp["metrics"]["test_accuracy"] > 0.9 and mlp["follows"] is None
        card = http.get("/v1/models/mnist-mlp/card")
        assert card.headers["content-type"].startswith("text/markdown") and card.text.startswith("# mnist-mlp")
        http.post("/v1/models/mnist-mlp/predict", json={"inputs": [[0] * 3]})  # a 400, counted as one
        metrics = http.get("/metrics").text
    ok = _sample(metrics, 'zoo_requests_total{endpoint="predict",model="mnist-mlp",status="200"}')
    assert ok >= 1 and _sample(metrics, 'zoo_requests_total{endpoint="predict",model="mnist-mlp",status="400"}') >= 1
    assert _sample(metrics, 'zoo_batch_size_count{model="mnist-mlp"}') >= 1
    assert _sample(metrics, 'zoo_request_seconds_count{endpoint="predict"}') >= ok


def test_docs_describe_both_apis(server):
    with httpx.Client(base_url=server, timeout=30) as http:
        page = http.get("/docs")
        spec = http.get("/openapi.json").json()
    assert page.status_code == 200 and "swagger" in page.text.lower()
    v1 = spec["paths"]["/v1/models/{name}/predict"]["post"]
    assert set(v1["requestBody"]["content"]) == {"application/json", "multipart/form-data"}
    assert v1["requestBody"]["content"]["application/json"]["schema"]["required"] == ["inputs"]
    assert [p["name"] for p in v1["parameters"]] == ["name", "top_k"]  # no stray version query parameter
    v2 = spec["paths"]["/v2/models/{name}/versions/{version}/infer"]["post"]
    tensor = v2["requestBody"]["content"]["application/json"]["schema"]["properties"]["inputs"]["items"]
    assert "UINT8" in tensor["properties"]["datatype"]["enum"]
    assert "outputs" in v2["responses"]["200"]["content"]["application/json"]["schema"]["properties"]


def _sample(text: str, series: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(series))


def test_requests_are_batched(digits):
    pixels, _, _ = digits
    with serving("mnist-mlp", batch_timeout_ms=200, max_batch_size=64) as url, httpx.Client(base_url=url) as http:
        def one(i):
            return http.post("/v1/models/mnist-mlp/predict", json={"inputs": pixels[i % 8, 0].tolist()})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        assert all(a.status_code == 200 for a in answers)
        metrics = http.get("/metrics").text
    assert _sample(metrics, 'zoo_batch_size_sum{model="mnist-mlp"}') == 16
    assert _sample(metrics, 'zoo_batch_size_count{model="mnist-mlp"}') <= 4  # 16 requests in a few passes


# --- bad input: a 4xx JSON error, never a 500 or a dead worker ---

def _bomb() -> bytes:
    """A PNG of 20000 x 20000 black pixels: a few hundred kB that would decode to 400 MB."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (20000, 20000)).save(out, format="PNG")
    return out.getvalue()


BAD = [
    ("post", "/v1/models/mnist-mlp/predict", {"content": b"{not json", "headers": {"content-type": "application/json"}},
     400, "not JSON"),
    ("post", "/v1/models/mnist-mlp/predict", {"json": {"input": [1]}}, 400, '{"inputs": ...}'),
    ("post", "/v1/models/mnist-mlp/predict", {"json": {"inputs": [[1, 2], [3, 4]]}}, 400, "shape (1, 28, 28)"),
    ("post", "/v1/models/mnist-mlp/predict", {"json": {"inputs": [["a"] * 28] * 28}}, 400, "numbers"),
    ("post", "/v1/models/mnist-mlp/predict", {"files": {"file": ("x.png", b"\x89PNG\r\n\x1a\nbroken")}}, 400,
     "x.png: not an image zoo can read"),
    ("post", "/v1/models/mnist-mlp/predict", {"files": {"file": ("bomb.png", "BOMB")}}, 400, "pixels"),
    ("post", "/v1/models/mnist-mlp/predict", {"files": {"other": ("x.png", b"1")}}, 400, "field 'file'"),
    ("post", "/v1/models/mnist-mlp/predict?top_k=0", {"json": {"inputs": [[[0] * 28] * 28]}}, 400, "top-k"),
    ("post", "/v1/models/nope/predict", {"json": {"inputs": [1]}}, 404, "no model 'nope'"),
    ("post", "/v1/models/transformer-encoder-reverse/predict", {"json": {"inputs": [3, 99999]}}, 400, "vocabulary"),
    ("post", "/v2/models/mnist-mlp/infer", {"json": {"inputs": [{"name": "input", "datatype": "FP32",
                                                                  "shape": [1, 1, 28, 28], "data": [0] * 784}]}},
     400, "datatype is UINT8"),
    ("post", "/v2/models/mnist-mlp/infer", {"json": {"inputs": [{"name": "input", "datatype": "UINT8",
                                                                  "shape": [1, 28, 28], "data": [0] * 784}]}},
     400, "input shape is [N, 1, 28, 28]"),
    ("post", "/v2/models/mnist-mlp/infer", {"json": {"inputs": [{"name": "input", "datatype": "UINT8",
                                                                  "shape": [1, 1, 28, 28], "data": [0] * 783}]}},
     400, "has 783 values"),
    ("post", "/v2/models/mnist-mlp/infer", {"json": {"inputs": [{"name": "input", "datatype": "UINT8",
                                                                  "shape": [10**9, 1, 28, 28], "data": [0]}]}},
     400, "N from 1 to 256"),
    ("post", "/v2/models/mnist-mlp/infer", {"json": {"inputs": [{"name": "input", "datatype": "UINT8",
                                                                  "shape": [1, 1, 28, 28], "data": [300] * 784}]}},
     400, "not UINT8 values"),
    ("post", "/v2/models/mnist-mlp/infer", {"content": b"{}", "headers": {"inference-header-content-length": "99"}},
     400, "does not fit"),
    ("post", "/v2/models/mnist-mlp/versions/0/infer", {"json": {}}, 404, "not '0'"),
    ("post", "/v2/models/mnist-mlp/infer", {"content": gzip.compress(b"{}"), "headers": {"content-encoding": "gzip"}},
     415, "uncompressed"),
    ("post", "/v2/models/mnist-mlp/infer", {"content": b"x" * (9 << 20)}, 413, "at most"),
    ("get", "/v2/models/nope", {}, 404, "served: mnist-mlp, transformer-encoder-reverse"),
]


def test_a_request_never_names_a_file_on_the_server(server, tmp_path):
    """JSON inputs are values: a path (of a file that exists, or not, or that only the server may
    read) gets the same 400, so a client can neither read server files nor probe which exist."""
    digit = tmp_path / "digit.npy"
    np.save(digit, np.zeros((28, 28), dtype=np.uint8))
    answers = []
    with httpx.Client(base_url=server, timeout=30) as http:
        for inputs in (str(digit), [str(digit)], "/nonexistent/x.png", "/etc/shadow", [[str(digit)]]):
            response = http.post("/v1/models/mnist-mlp/predict", json={"inputs": inputs})
            answers.append((response.status_code, response.json()["error"]))
    assert {status for status, _ in answers} == {400} and len({error for _, error in answers}) == 1
    assert str(tmp_path) not in answers[0][1] and "not text" in answers[0][1]


@pytest.mark.parametrize("method, path, request_args, status, message", BAD, ids=[f"{b[3]}-{b[4][:18]}" for b in BAD])
def test_bad_requests_get_a_4xx_json_error(server, method, path, request_args, status, message):
    if request_args.get("files", {}).get("file", (0, 0))[1] == "BOMB":
        request_args = {"files": {"file": ("bomb.png", _bomb())}}
    with httpx.Client(base_url=server, timeout=30) as http:
        response = getattr(http, method)(path, **request_args)
        assert response.status_code == status, response.text
        assert message in response.json()["error"]
        assert http.post("/v1/models/mnist-mlp/predict", json={"inputs": [[[0] * 28] * 28]}).status_code == 200


# --- load: shedding, timeouts, recovery ---

def test_overload_gets_503_with_retry_after_and_recovers(digits):
    pixels, _, _ = digits
    body = {"inputs": pixels[0, 0].tolist()}
    with serving("mnist-mlp", max_queue=2, batch_timeout_ms=500) as url, httpx.Client(base_url=url, timeout=30) as http:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http.post("/v1/models/mnist-mlp/predict", json=body), range(8)))
        shed = [a for a in answers if a.status_code == 503]
        assert len(shed) >= 4 and all(a.headers["retry-after"] == "1" and "retry" in a.json()["error"] for a in shed)
        assert all(a.status_code == 200 for a in answers if a not in shed)
        assert http.post("/v1/models/mnist-mlp/predict", json=body).status_code == 200  # recovered
    with serving("mnist-mlp", timeout=0.05, batch_timeout_ms=400) as url, httpx.Client(base_url=url) as http:
        late = http.post("/v1/models/mnist-mlp/predict", json=body)
        assert late.status_code == 504 and "within 0.05 s" in late.json()["error"]


def test_slow_clients_are_cut_off_and_never_keep_an_honest_one_waiting(digits):
    """The slow-client attack: 40 connections that never finish their headers and 40 that never
    finish their body, with 2 places in the queue. An honest request is answered during it; the
    server closes the first kind after the read timeout and answers the second 408."""
    pixels, _, _ = digits
    body = json.dumps({"inputs": pixels[0, 0].tolist()}).encode()
    with serving("mnist-mlp", max_queue=2, read_timeout=2.0) as url:
        slow_client_attack(url, body, 80, 2.0)
        with httpx.Client(base_url=url, timeout=10) as http:
            assert http.post("/v1/models/mnist-mlp/predict", json={"inputs": pixels[0, 0].tolist()}).status_code == 200


def slow_client_attack(url: str, body: bytes, connections: int, read_timeout: float) -> None:
    """Open ``connections`` to mnist-mlp's predict, half sending part of their headers, half their
    headers and part of their body; assert that an honest request is answered at once, that the
    server closes the first half after ``read_timeout`` and answers the second 408."""
    import socket

    port = int(url.rsplit(":", 1)[1])
    heads, bodies = [], []
    for i in range(connections):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        head = f"POST /v1/models/mnist-mlp/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        if i % 2:
            conn.sendall(f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body[:100])
            bodies.append(conn)
        else:
            conn.sendall(head.encode())
            heads.append(conn)
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=10) as http:
        answer = http.post("/v1/models/mnist-mlp/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 200 and time.monotonic() - started < read_timeout  # before any slow one was cut off
    for conn in heads:  # closed by the server: end of stream, no answer
        assert conn.recv(1024) == b""
    for conn in bodies:
        reply = b"".join(iter(lambda conn=conn: conn.recv(4096), b""))  # to the server's close
        assert reply.startswith(b"HTTP/1.1 408 ") and f"did not arrive within {read_timeout:g} s".encode() in reply, \
            reply[:200]
    assert time.monotonic() - started < read_timeout + 6.5
    for conn in heads + bodies:
        conn.close()


def test_past_max_connections_a_request_gets_503_until_the_slow_ones_are_cut_off(digits):
    import socket

    pixels, _, _ = digits
    with serving("mnist-mlp", max_connections=10, read_timeout=1.0) as url:
        port = int(url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(12)]
        for conn in held:
            conn.sendall(b"GET /v2/health/ready HTTP/1.1\r\n")
        time.sleep(0.2)
        with httpx.Client(base_url=url, timeout=10) as http:
            body = {"inputs": pixels[0, 0].tolist()}
            assert http.post("/v1/models/mnist-mlp/predict", json=body).status_code == 503
            time.sleep(1.5)  # the held connections are cut off after the read timeout
            assert http.post("/v1/models/mnist-mlp/predict", json=body).status_code == 200
        for conn in held:
            conn.close()


def test_a_flood_of_one_error_is_one_log_line_a_minute():
    import logging

    now = [0.0]
    once = OncePerInterval(60, clock=lambda: now[0])

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, message, None, None)

    passed = [once.filter(record("socket.accept() out of system resource")) for _ in range(10_000)]
    assert passed.count(True) == 1 and once.filter(record("another kind of error"))
    now[0] = 61.0
    late = record("socket.accept() out of system resource")
    assert once.filter(late) and late.msg.endswith("(9,999 more like it in the last 61 s)")


# --- hot swap ---

def test_a_newer_build_swaps_in_without_failing_a_request(tmp_path, capfd):
    from zoo.testing import tiny_build
    from zoo.weights import store

    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    tiny_build(REGRESSION, tmp_path / "one", "train.epochs=1")
    x = [[0.5, -1.0, 2.0]]
    answers, stop = [[] for _ in range(4)], threading.Event()  # each client's, in the order it got them
    with serving("regression@latest") as url, httpx.Client(base_url=url, timeout=30) as http:
        def stream(mine):
            while not stop.is_set():
                response = http.post("/v1/models/regression/predict", json={"inputs": x})
                mine.append((response.status_code, response.headers.get("x-zoo-model-version"),
                             response.json()[0] if response.status_code == 200 else response.text))

        streams = [threading.Thread(target=stream, args=(mine,)) for mine in answers]
        for thread in streams:
            thread.start()
        try:
            second = tiny_build(REGRESSION, tmp_path / "two", "train.epochs=3", "train.seed=5")
            _wait(lambda: http.get("/v1/models").json()[0]["version"] == "2")
            time.sleep(0.3)
            # a build that fails verification (its tensors altered) is refused; version 2 keeps answering
            corrupt = tmp_path / "corrupt.safetensors"
            data = bytearray((second / "weights.safetensors").read_bytes())
            data[-3] ^= 0xFF
            corrupt.write_bytes(bytes(data))
            store.record("regression", corrupt)
            time.sleep(0.5)
        finally:
            stop.set()
            for thread in streams:
                thread.join()
        assert http.get("/v1/models").json()[0]["version"] == "2"
    assert {status for mine in answers for status, _, _ in mine} == {200}
    for mine in answers:  # (across clients, the order their answers were appended in is not the server's)
        versions = [version for _, version, _ in mine]
        assert versions[0] == "1" and versions[-1] == "2" and versions.index("2") > 0
        assert "1" not in versions[versions.index("2"):]  # one switch, never back
    [expected] = zoo.predict("regression@2", x)
    assert answers[0][-1][2] == {"input": 0, **expected}
    assert "keeping regression@2" in capfd.readouterr().err


def _wait(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


# --- the command: SIGTERM drains, errors are one line ---

def test_sigterm_drains_requests_in_flight_and_exits_0(digits):
    pixels, _, expected = digits
    process = subprocess.Popen([sys.executable, "-m", "zoo", "serve", "mnist-mlp", "--port", "0",
                                "--batch-timeout-ms", "1500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        assert line.startswith("zoo serve: http://127.0.0.1:"), (line, process.stderr.read() if not line else "")
        url = line.split()[2].rstrip("/")
        with httpx.Client(base_url=url, timeout=30) as http, ThreadPoolExecutor(3) as pool:
            _wait(lambda: _answers(http))  # serving: the port listens from the first line, the app a little later
            body = {"inputs": pixels[0, 0].tolist(), "top_k": 5}
            pending = [pool.submit(http.post, "/v1/models/mnist-mlp/predict", json=body) for _ in range(3)]
            time.sleep(0.5)  # the three wait in the batcher (1.5 s) when SIGTERM comes
            process.send_signal(signal.SIGTERM)
            answers = [p.result() for p in pending]
        assert [a.status_code for a in answers] == [200] * 3
        same_predictions(answers[0].json(), expected[:1])
        assert process.wait(timeout=30) == 0
        assert "zoo serve: stopped" in process.stderr.read()
    finally:
        process.kill()


def test_workers_share_the_port_and_their_metrics_and_each_cuts_off_slow_clients(digits):
    pixels, _, _ = digits
    process = subprocess.Popen([sys.executable, "-m", "zoo", "serve", "mnist-mlp", "--port", "0", "--workers", "2",
                                "--read-timeout", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().split()[2].rstrip("/")
        with httpx.Client(base_url=url, timeout=60) as http:
            _wait(lambda: _answers(http))
            # both processes accept on the port: the attack's connections land on both, and each
            # process applies the command's read timeout to its own
            slow_client_attack(url, json.dumps({"inputs": pixels[0, 0].tolist()}).encode(), 40, 2.0)
            body = {"inputs": pixels[0, 0].tolist()}
            with ThreadPoolExecutor(6) as pool:
                answers = list(pool.map(lambda _: http.post("/v1/models/mnist-mlp/predict", json=body), range(12)))
            assert [a.status_code for a in answers] == [200] * 12
            metrics = http.get("/metrics").text
        # the attack's honest request, then these 12; the slow ones that sent a body answered 408
        assert _sample(metrics, 'zoo_requests_total{endpoint="predict",model="mnist-mlp",status="200"}') == 13
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


def _answers(http) -> bool:
    try:
        return http.get("/v2/health/ready").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_errors_are_one_line(monkeypatch):
    import zoo_serve

    result = run_zoo("serve", "nope")
    assert result.returncode == 2 and "no model 'nope' in the catalog" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    twice = run_zoo("serve", "mnist-mlp", "mnist-mlp", "--port", "0")
    assert twice.returncode == 2 and "two models would be served as mnist-mlp; name one ALIAS=MODEL" in twice.stderr
    monkeypatch.setattr(zoo_serve, "_importable", lambda name: name != "batched")
    missing = run_zoo("serve", "mnist-mlp")
    assert missing.returncode == 2
    assert "(batched missing): pip install -e '.[serve]' in a zoo checkout" in missing.stderr
    monkeypatch.setattr(zoo_serve, "_importable", lambda name: name != "uvloop")
    no_uvloop = run_zoo("serve", "mnist-mlp", "--loop", "uvloop")
    assert no_uvloop.returncode == 2 and "--loop uvloop needs the uvloop package" in no_uvloop.stderr


def test_aliases_and_files_serve_under_their_names(tmp_path):
    shutil.copy(zoo.load("mnist-mlp").zoo_source.path, tmp_path / "mine.safetensors")
    with serving(str(tmp_path / "mine.safetensors"), "old=mnist-mlp") as url, httpx.Client(base_url=url) as http:
        names = [(m["name"], m["source"]) for m in http.get("/v1/models").json()]
    assert names == [("mnist-mlp", "file"), ("old", "catalog")]


def test_page_in_chromium_answers_what_zoo_predict_does(server, digits):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip("Debian's chromium-driver is not installed (.ci/run installs it)")
    _, paths, expected = digits
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
    try:
        browser.get(server + "/")
        wait = WebDriverWait(browser, 30)
        section = wait.until(lambda b: b.find_element(By.ID, "model-mnist-mlp"))
        assert "test_accuracy" in section.find_element(By.CLASS_NAME, "facts").text
        section.find_element(By.CLASS_NAME, "file").send_keys(str(paths[2]))
        wait.until(lambda b: section.find_elements(By.CSS_SELECTOR, ".answer table tr"))
        rows = section.find_elements(By.CSS_SELECTOR, ".answer table tr")
        assert [r.find_element(By.CLASS_NAME, "label").text for r in rows] == [t["label"] for t in expected[2]["top"]]
        shown = float(rows[0].find_element(By.CLASS_NAME, "probability").text.rstrip("%"))
        assert shown == pytest.approx(100 * expected[2]["top"][0]["probability"], abs=0.051)
        assert section.find_element(By.CSS_SELECTOR, ".seen img").get_attribute("src").startswith("blob:")  # shown
        assert "grey 28x28 image" in section.find_element(By.CLASS_NAME, "facts").text
        # an empty canvas is refused, not sent
        canvas = section.find_element(By.TAG_NAME, "canvas")
        section.find_element(By.CLASS_NAME, "clear").click()
        section.find_element(By.CLASS_NAME, "send-drawing").click()
        said = wait.until(lambda b: section.find_element(By.CSS_SELECTOR, ".answer .error"))
        assert "the canvas is empty" in said.text
        # a "7" drawn to fill the canvas, predicted as it is drawn (no click): MNIST's own preprocessing
        # (the ink's box scaled to 20x20, centred by its mass in 28x28) makes it read as 7
        webdriver.ActionChains(browser).move_to_element_with_offset(canvas, -110, -110).click_and_hold() \
            .move_by_offset(110, 0).move_by_offset(110, 0).move_by_offset(-40, 70).move_by_offset(-40, 70) \
            .move_by_offset(-30, 80).release().perform()
        wait.until(lambda b: section.find_elements(By.CSS_SELECTOR, ".answer table tr"))
        rows = section.find_elements(By.CSS_SELECTOR, ".answer table tr")
        assert len(rows) == 5 and rows[0].find_element(By.CLASS_NAME, "label").text == "7"
        assert section.find_element(By.CSS_SELECTOR, ".seen img").get_attribute("src").startswith("data:image/png")
        card = section.find_element(By.CLASS_NAME, "card")  # the card's Markdown rendered: headings, a table
        assert card.find_elements(By.TAG_NAME, "h3") and card.find_elements(By.CSS_SELECTOR, "table td")
        tokens = wait.until(lambda b: b.find_element(By.ID, "model-transformer-encoder-reverse"))
        tokens.find_element(By.CLASS_NAME, "tokens").send_keys("3, 5, 7, 9")
        tokens.find_element(By.CLASS_NAME, "send-tokens").click()
        label = wait.until(lambda b: tokens.find_elements(By.CSS_SELECTOR, ".answer .label"))
        assert label[0].text == "9 7 5 3"
    finally:
        browser.quit()


def _stale(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.text
    except StaleElementReferenceException:
        return True
    return False


def test_request_bounds_are_checked_before_reading(server):
    """A request claiming a huge body is refused from its header, before a byte of it is read."""
    import socket

    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v2/models/mnist-mlp/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        reply = b""
        while b"at most" not in reply and (chunk := sock.recv(4096)):  # the body may come in a packet of its own
            reply += chunk
        reply = reply.decode()
    assert reply.startswith("HTTP/1.1 413") and "at most" in reply


def test_accepted_connections_send_without_waiting_for_the_clients_ack():
    """Nagle's algorithm off (TCP_NODELAY) on every connection the server accepts: asyncio sets it only
    when the listening socket says IPPROTO_TCP, and without it each answer on a kept-alive connection
    waited for the client's delayed ACK (about 45 ms, 22 requests/s at one client)."""
    import asyncio
    import socket

    sock = bind("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        loop = asyncio.get_running_loop()
        seen = loop.create_future()

        class Peer(asyncio.Protocol):
            def connection_made(self, transport):
                seen.set_result(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await loop.create_server(Peer, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0


def test_a_server_behind_keys_answers_401_without_one_and_200_with_it():
    access = Access(("first-key", "second-key"), public_page=True)
    with serving("mnist-mlp", access=access) as url, httpx.Client(base_url=url, timeout=30) as http:
        body = {"inputs": [[[0] * 28] * 28]}
        refused = http.post("/v1/models/mnist-mlp/predict", json=body)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Bearer realm="zoo serve"'
        assert "API key" in refused.json()["error"] and "first-key" not in refused.text
        for path in ("/v1/models", "/metrics", "/docs", "/v2/models/mnist-mlp"):
            assert http.get(path).status_code == 401, path
        wrong = http.post("/v1/models/mnist-mlp/predict", json=body, headers={"Authorization": "Bearer first-kez"})
        assert wrong.status_code == 401
        for key in access.keys:
            answer = http.post("/v1/models/mnist-mlp/predict", json=body, headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200 and answer.json()[0]["top"]
        assert http.get("/v2/health/ready").status_code == 200 and http.get("/v2/health/live").status_code == 200
        assert http.get("/").status_code == 200  # --public-page: the page asks for a key, once
    with serving("mnist-mlp", access=Access(("k",))) as url, httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/").status_code == 401


def test_serve_takes_keys_from_the_environment_and_a_file_and_refuses_bad_ones(tmp_path, monkeypatch):
    import argparse

    from zoo_serve import _keys

    (tmp_path / "keys").write_text("# team keys\nalpha\n\nbeta  # the CI's\n")
    monkeypatch.setenv("ZOO_SERVE_API_KEY", "gamma")
    args = argparse.Namespace(api_key=["alpha"], api_keys_file=str(tmp_path / "keys"))
    assert _keys(args) == ("alpha", "gamma", "beta")
    with pytest.raises(zoo.ZooError, match="API key 2 is empty") as refused:
        _keys(argparse.Namespace(api_key=["ok", ""], api_keys_file=None))
    assert "ok" not in str(refused.value)


def test_the_page_asks_for_the_key_once():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip("Debian's chromium-driver is not installed (.ci/run installs it)")
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    with serving("mnist-mlp", access=Access(("the-key",), public_page=True)) as url:
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path), options=options)
        try:
            browser.get(url + "/")
            wait = WebDriverWait(browser, 30)
            alert = wait.until(expected_conditions.alert_is_present())
            assert "API key" in alert.text
            alert.send_keys("the-key")
            alert.accept()
            section = wait.until(lambda b: b.find_element(By.ID, "model-mnist-mlp"))
            assert "test_accuracy" in section.find_element(By.CLASS_NAME, "facts").text
            wait.until(lambda b: section.find_elements(By.CSS_SELECTOR, ".card h3"))  # the card came, with the key
            assert browser.execute_script("return sessionStorage.getItem('zoo-api-key')") == "the-key"
        finally:
            browser.quit()


NOT_NUMBERS = [b'{"inputs": [[NaN, 1, 2]]}', b'{"inputs": [[Infinity, 1, 2]]}', b'{"inputs": [[-Infinity, 1, 2]]}',
               b'{"inputs": [[1e309, 1, 2]]}', b'{"inputs": [[1e308, 1, 2]]}', b'{"inputs": [[-1e308, 1, 2]]}',
               b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]


def test_numbers_that_are_not_numbers_are_4xx_on_v1_and_v2(tmp_path):
    """NaN, infinities, numbers beyond float32 and JSON nested 100,000 deep: a 4xx with a JSON error,
    never a 500; the server keeps answering."""
    recipe = {**REGRESSION, "name": "floats"}
    (tmp_path / "b").mkdir()
    from zoo.testing import tiny_build

    tiny_build(recipe, tmp_path / "b", "train.epochs=1")
    with serving("floats@latest") as url, httpx.Client(base_url=url, timeout=30) as http:
        for body in NOT_NUMBERS:
            answer = http.post("/v1/models/floats/predict", content=body, headers={"content-type": "application/json"})
            assert 400 <= answer.status_code < 500 and "error" in answer.json(), (body[:40], answer.text[:200])
        for value in ("NaN", "Infinity", "1e309", "-1e308"):
            request = ('{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [%s, 1, 2]}]}'
                       % value).encode()
            answer = http.post("/v2/models/floats/infer", content=request, headers={"content-type": "application/json"})
            assert 400 <= answer.status_code < 500 and "error" in answer.json(), (value, answer.text[:200])
        assert http.post("/v1/models/floats/predict", json={"inputs": [[0.5, -1.0, 2.0]]}).status_code == 200


def test_only_an_address_binds_and_loopback_answers_its_own_names_only():
    from zoo_serve.app import address, loopback_hosts

    for bad in ("", "[::1", "http://0.0.0.0", "999.1.1.1", "my host"):
        with pytest.raises(zoo.ZooError, match="is not an IP address"):
            address(bad)
    assert address("localhost") == "127.0.0.1" and address("[::1]") == "::1" and loopback_hosts("0.0.0.0") == ()
    with serving("mnist-mlp", access=Access(hosts=loopback_hosts("127.0.0.1"))) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        assert http.get("/v1/models").status_code == 200
        port = url.rsplit(":", 1)[1]
        assert http.get("/v1/models", headers={"host": f"localhost:{port}"}).status_code == 200
        rebound = http.get("/v1/models", headers={"host": f"attacker.example:{port}"})  # DNS rebinding
        assert rebound.status_code == 403 and "Host header" in rebound.json()["error"]
    empty = run_zoo("serve", "mnist-mlp", "--host", "")
    assert empty.returncode == 2 and "--host '' is not an IP address" in empty.stderr


def test_the_loaded_heap_is_out_of_the_collectors_sight():
    import gc

    from zoo_serve import freeze

    with serving("mnist-mlp"):
        try:
            freeze()
            assert gc.get_freeze_count() > 10_000  # torch, the model, the app: no full collection walks them
        finally:
            gc.unfreeze()
