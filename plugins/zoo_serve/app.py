"""The HTTP application of ``zoo serve``, on FastAPI: the Open Inference Protocol (``/v2``), zoo's own
API (``/v1``), a page to try each model (``/``) and Prometheus metrics (``/metrics``).

An inference request goes through steps, as LitServe's: its protocol's spec (zoo_serve.specs: v1
or v2) decodes it into a batch of inputs, the model's :class:`Pipeline` batches it with other
requests, predicts and unbatches, and the spec encodes the outputs. Raw input becomes model input
through ``zoo.use.predict`` -- the code ``zoo predict`` runs -- and the output becomes top-k labels
there too. Every request is bounded before it is read: its body size,
its count of inputs, an image's pixels, the requests in flight (beyond them: 503 with Retry-After)
and its time (504)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib.resources import files

import torch
from batched.aio import dynamically
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.exceptions import HTTPException

from zoo.api import Registry, ZooError, forward, model_card, zoo_version
from zoo_serve import protocol
from zoo_serve.models import Served, Slot, follow, open_slot
from zoo_serve.specs import SPECS, Access, Limits, Spec


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("zoo_requests", "Requests answered, by endpoint, model and status",
                                ["endpoint", "model", "status"], registry=self.registry)
        self.latency = Histogram("zoo_request_seconds", "Time to answer a request", ["endpoint"],
                                 registry=self.registry)
        self.batch = Histogram("zoo_batch_size", "Inputs in one forward pass", ["model"], registry=self.registry,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.in_flight = Gauge("zoo_in_flight_requests", "Inference requests being answered", registry=self.registry,
                               multiprocess_mode="livesum")


def create(slots: list[Slot], registry: Registry, limits: Limits = Limits(), follow_every: float = 2.0,
           access: Access = Access()) -> FastAPI:
    """The application serving ``slots`` (see :func:`zoo_serve.models.open_slot`) to whom ``access``
    lets in."""
    by_name = {slot.name: slot for slot in slots}
    metrics = Metrics()
    pipelines = {slot.name: Pipeline(slot, limits, metrics) for slot in slots}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        following = asyncio.create_task(follow(slots, registry, follow_every)) if any(s.follows for s in slots) else None
        yield
        if following:
            following.cancel()

    app = FastAPI(title="zoo serve", version=zoo_version, lifespan=lifespan, redoc_url=None,
                  description="zoo's API (/v1) and the Open Inference Protocol (/v2) for the models served here")
    app.add_middleware(_Bounded, limits=limits, metrics=metrics, names=set(by_name))
    app.add_middleware(_Keys, access=access)

    def slot_of(name: str, version: str | None = None) -> Slot:
        slot = by_name.get(name)
        if slot is None:
            raise HTTPException(404, f"no model '{name[:100]}' is served here; served: {', '.join(by_name)}")
        if version is not None and version != slot.current.version:
            raise HTTPException(404, f"{name} serves version {slot.current.version}, not {version[:40]!r}")
        return slot

    @app.exception_handler(ZooError)
    async def bad_input(request: Request, exc: ZooError):
        return _error(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error(exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception):  # a bug in zoo or a plugin: said in one line, kept serving
        where = f"{exc.__traceback__.tb_frame.f_code.co_filename}" if exc.__traceback__ else "?"
        print(f"zoo serve: error: {request.url.path}: {type(exc).__name__}: {exc} ({where})", file=sys.stderr)
        return _error(500, f"internal error: {type(exc).__name__}; the server log has the details")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return _error(400, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid request')}")

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (files("zoo_serve") / "page.html").read_text()

    @app.get("/v1/models")
    async def models():
        return [{"name": s.name, "follows": s.follows, **s.current.describe()} for s in slots]

    @app.get("/v1/models/{name}/card")
    async def card(name: str):
        served = slot_of(name).current
        return PlainTextResponse(model_card(served.model, registry, verify=False), media_type="text/markdown")

    @app.get("/v2")
    async def server_metadata():
        return {"name": "zoo", "version": zoo_version, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None):
        served = slot_of(name, version).current
        return protocol.metadata(name, [served.version], served.known.spec, served.output_shape)

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None):
        slot_of(name, version)
        return {"name": name, "ready": True}

    for spec in SPECS:  # each protocol's routes over the one batched pipeline
        for route in spec.routes:
            app.post(route, summary=spec.summary, openapi_extra=spec.openapi)(
                _endpoint(spec, slot_of, pipelines, limits, versioned="{version}" in route))

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(_collected(metrics.registry)), media_type=CONTENT_TYPE_LATEST)

    return app


def _endpoint(spec: Spec, slot_of: Callable[[str, str | None], Slot], pipelines: dict[str, Pipeline], limits: Limits,
              versioned: bool):
    """The route of ``spec``: decode -> the model's pipeline (batch, predict, unbatch) -> encode."""

    async def answer(name: str, request: Request, version: str | None) -> Response:
        slot = slot_of(name, version)
        decoded = await spec.decode(request, slot.current.known.spec, limits)
        outputs, served = await pipelines[slot.name](decoded.x)
        return spec.encode(name, decoded, outputs, served)

    async def with_version(name: str, version: str, request: Request) -> Response:
        return await answer(name, request, version)

    async def without(name: str, request: Request) -> Response:
        return await answer(name, request, None)

    return with_version if versioned else without


class Pipeline:
    """One served model's steps between decoding and encoding: the rows of many requests batched
    dynamically (``batched``: a batch goes when full or after ``batch_timeout_ms``), one forward pass
    in a worker thread, and the outputs unbatched back to each request, with the model that answered
    (one model for the whole batch, even while a newer one swaps in)."""

    def __init__(self, slot: Slot, limits: Limits, metrics: Metrics):
        self.limits = limits

        def predict(rows: list[torch.Tensor]) -> list[tuple[torch.Tensor, Served]]:
            served = slot.current
            metrics.batch.labels(slot.name).observe(len(rows))
            return [(out, served) for out in forward(served.model, torch.stack(rows), served.known)]

        self.batched = dynamically(predict, batch_size=limits.max_batch_size, timeout_ms=limits.batch_timeout_ms)

    async def __call__(self, x: torch.Tensor) -> tuple[list[torch.Tensor], Served]:
        """The outputs of one request's inputs ``x``, and the model that gave them (504 past the timeout)."""
        try:
            rows = await asyncio.wait_for(self.batched(list(x)), self.limits.timeout)
        except TimeoutError:
            raise HTTPException(504, f"no answer within {self.limits.timeout:g} s; try again later") from None
        return [out for out, _ in rows], rows[0][1]


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _collected(registry: CollectorRegistry) -> CollectorRegistry:
    """The registry to report: with several worker processes, all of theirs (prometheus_client's
    multiprocess mode, which ``zoo serve --workers`` turns on)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return registry
    from prometheus_client import multiprocess

    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)
    return merged


INFERENCE = ("/predict", "/infer")


class _Bounded:
    """ASGI middleware: bounds each inference request before the application sees it -- its body
    (size, and ``read_timeout`` to arrive: 408 after), then the requests in flight, a place in the
    queue taken only once the request is read whole -- and counts and times every request."""

    def __init__(self, app, limits: Limits, metrics: Metrics, names: set[str]):
        self.app, self.limits, self.metrics, self.names = app, limits, metrics, names
        self.in_flight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        parts = path.strip("/").split("/")
        endpoint = next((e.strip("/") for e in INFERENCE if path.endswith(e)), "other")
        model = parts[2] if len(parts) > 2 and parts[1] == "models" and parts[2] in self.names else "-"
        status, started = [500], time.perf_counter()

        async def counted(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if endpoint == "other":
                return await self.app(scope, receive, counted)
            try:  # read whole before it takes a place in the queue: a slow client holds a connection, no more
                body = await asyncio.wait_for(self._body(scope, receive), self.limits.read_timeout)
            except asyncio.TimeoutError:
                body = _error(408, f"the request body did not arrive within {self.limits.read_timeout:g} s",
                              {"connection": "close"})
            if isinstance(body, Response):
                return await body(scope, receive, counted)
            if self.in_flight >= self.limits.max_queue:
                return await _error(503, f"{self.in_flight} requests in flight, the most this server takes; retry "
                                         "shortly", {"retry-after": "1"})(scope, receive, counted)
            self.in_flight += 1
            self.metrics.in_flight.inc()
            try:
                return await self.app(scope, _replay(body), counted)
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
        finally:
            self.metrics.requests.labels(endpoint, model, str(status[0])).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - started)

    async def _body(self, scope, receive) -> bytes | Response:
        headers = dict(scope["headers"])
        limit = self.limits.max_body_bytes
        if headers.get(b"content-encoding", b"identity") != b"identity":
            return _error(415, "compressed request bodies are not accepted; send it uncompressed")
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return _error(413, f"the request is {declared.decode()[:20]} bytes; this server takes at most {limit:,}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return Response(status_code=499)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _error(413, f"the request is more than {limit:,} bytes, the most this server takes")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


class _Keys:
    """ASGI middleware: a request without a key ``access`` accepts is answered 401 (with
    ``WWW-Authenticate: Bearer``) before anything else reads it. Keys are never logged."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not self.access.host_allowed(headers.get(b"host", b"").decode("latin-1")):
            refused = _error(403, "this server answers requests for its own address only (the Host header names "
                                  "another); zoo serve listening on loopback refuses other names, against DNS "
                                  "rebinding")
            return await refused(scope, receive, send)
        if self.access.allows(scope["path"], headers.get(b"authorization", b"").decode("latin-1")):
            return await self.app(scope, receive, send)
        refused = _error(401, "this server needs an API key: send Authorization: Bearer KEY",
                         {"www-authenticate": 'Bearer realm="zoo serve"'})
        return await refused(scope, receive, send)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # the body is read; wait for a disconnect that only the server sends
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def address(host: str) -> str:
    """``--host`` checked: an IP address, or localhost; an empty or malformed value is an error (an
    empty one would bind every interface)."""
    import ipaddress

    if host == "localhost":
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host.strip("[]") if host.startswith("[") and host.endswith("]") else host))
    except ValueError:
        raise ZooError(f"--host {host[:60]!r} is not an IP address: give 127.0.0.1 (the default: this machine "
                       "only), ::1, 0.0.0.0 or :: (every interface), or one address of this machine") from None


def loopback_hosts(host: str) -> tuple[str, ...]:
    """The Host header names a server bound to ``host`` accepts: on loopback only its own, else any."""
    import ipaddress

    return (*LOOPBACK_NAMES, host) if ipaddress.ip_address(host).is_loopback else ()


def bind(host: str, port: int):
    """A listening TCP socket on ``host`` (an IP address: see :func:`address`):``port`` (0: a free port)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said, not left 0: asyncio sets TCP_NODELAY only on connections accepted from such a
    # socket, and without it each answer on a kept-alive connection waited for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ZooError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def from_environment() -> FastAPI:
    """The application a ``zoo serve --workers N`` worker process runs, from the command's settings."""
    from zoo_serve import SWITCH_INTERVAL, freeze
    from zoo_serve.connections import quiet_floods, server_config

    sys.setswitchinterval(SWITCH_INTERVAL)
    settings = json.loads(os.environ["ZOO_SERVE_SETTINGS"])
    registry = Registry.from_environment(disabled=settings["disabled"], strict=settings["strict"])
    slots = [open_slot(spec, registry, settings["device"]) for spec in settings["models"]]
    access = Access(**{k: tuple(v) if isinstance(v, list) else v for k, v in settings["access"].items()})
    limits = Limits(**settings["limits"])
    app = create(slots, registry, limits, settings["follow_every"], access)
    server_config(limits)  # this process's connections: read timeout
    quiet_floods()
    freeze()
    return app


def settings_json(models: list[str], device: str | None, limits: Limits, follow_every: float, disabled: list[str],
                  strict: bool, access: Access) -> str:
    """What :func:`from_environment` reads: the command's settings, for its worker processes."""
    return json.dumps({"models": models, "device": device, "limits": asdict(limits), "follow_every": follow_every,
                       "disabled": disabled, "strict": strict, "access": asdict(access)})

