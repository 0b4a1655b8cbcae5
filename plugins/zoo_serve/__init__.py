"""``zoo serve``: models behind HTTP -- the Open Inference Protocol, zoo's own API, a page to try them
and Prometheus metrics (docs/serving.md). The serving stack (FastAPI, uvicorn, batched,
prometheus_client) is the ``serve`` extra, imported only when the command runs."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile

from zoo.api import ZooError, hookimpl, install_hint

STACK = ("fastapi", "uvicorn", "batched", "prometheus_client", "multipart")
# Seconds a thread holds the GIL before another may take it (Python's default: 0.005). The forward
# pass runs in a worker thread; at the default, handing its answer back to the event loop cost up to
# 5 ms per batch (benchmarks/serving.py: mnist-mlp at 1 client, 13.6 -> 4.8 ms a request).
SWITCH_INTERVAL = 0.0005


@hookimpl
def register_commands(register):
    register("serve", serve, help="serve models over HTTP (Open Inference Protocol, a JSON API, a page to try them)",
             arguments=_arguments,
             description="Serve one or more models over HTTP with dynamic batching: the Open Inference Protocol "
                         "(KServe v2: /v2/models/NAME/infer), zoo's JSON API (/v1/models/NAME/predict, the "
                         "answers of zoo predict), a page to try each model (/) and Prometheus metrics (/metrics). "
                         "NAME@latest follows the store: a newer build is loaded, checked and swapped in without "
                         "failing a request. SIGTERM finishes the requests in flight, then exits 0.")


def _arguments(p: argparse.ArgumentParser) -> None:
    from zoo.api import number, path, positive

    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="a published model (NAME), a local build (NAME@latest follows new builds, NAME@3 pins), "
                        "a weights file; ALIAS=MODEL serves it as ALIAS")
    p.add_argument("--host", default="127.0.0.1", help="the IP address to listen on (default 127.0.0.1: this machine "
                                                    "only; 0.0.0.0 or :: for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--device", help="where the models run: cpu (default), cuda, cuda:1, mps")
    p.add_argument("--workers", type=positive, default=1, help="server processes sharing the port (default 1)")
    p.add_argument("--max-batch-size", type=positive, default=64, help="inputs in one forward pass (default 64)")
    p.add_argument("--batch-timeout-ms", type=number(0, 60_000), default=2.0, help="how long a batch waits to fill (default 2)")
    p.add_argument("--max-queue", type=positive, default=256,
                   help="requests in flight per process before 503 + Retry-After (default 256)")
    p.add_argument("--max-body-mb", type=number(0, 4096, above=True), default=8.0, help="largest request body in MB (default 8)")
    p.add_argument("--max-inputs", type=positive, default=256, help="inputs in one request (default 256)")
    p.add_argument("--timeout", type=number(0, 86_400, above=True), default=30.0, help="seconds a request may take before 504 (default 30)")
    p.add_argument("--read-timeout", type=number(0, 3_600, above=True), default=10.0,
                   help="seconds a request's line and headers, then its body, may take to arrive (default 10): "
                        "a slower client is disconnected (408 for a late body)")
    p.add_argument("--max-connections", type=positive, default=1000,
                   help="connections open at once, beyond them 503 (default 1000; fewer if the file-descriptor "
                        "limit is lower)")
    p.add_argument("--poll", type=number(0, 86_400, above=True), default=2.0, help="seconds between checks for new builds (default 2)")
    p.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="the event loop: uvloop when it is installed (auto, the default), or asyncio's own")
    keys = p.add_argument_group("access (docs/serving.md#api-keys)")
    keys.add_argument("--api-key", action="append", default=[], metavar="KEY",
                      help="require Authorization: Bearer KEY on every endpoint but /v2/health/* (repeatable; "
                           "also ZOO_SERVE_API_KEY)")
    keys.add_argument("--api-keys-file", metavar="FILE", type=path, help="a file of keys, one a line ('#' starts a comment)")
    keys.add_argument("--public-page", action="store_true",
                      help="serve the page (/) without a key: it asks for one, once, for the calls it makes")


def serve(args: argparse.Namespace) -> int:
    missing = [name for name in STACK if not _importable(name)]
    if missing:
        raise ZooError(f"zoo serve needs the serving stack ({', '.join(missing)} missing): {install_hint('serve')}")
    import uvicorn

    from zoo_serve.app import address, bind, create, loopback_hosts, settings_json
    from zoo_serve.connections import quiet_floods, server_config
    from zoo_serve.specs import Access, Limits
    from zoo_serve.models import open_slot

    if not 0 <= args.port < 65536:
        raise ZooError(f"--port {args.port} is not a port (0 to 65535)")
    if min(args.batch_timeout_ms, args.max_body_mb, args.timeout, args.poll) <= 0:
        raise ZooError("--batch-timeout-ms, --max-body-mb, --timeout and --poll must be positive")
    if args.loop == "uvloop" and not _importable("uvloop"):
        raise ZooError("--loop uvloop needs the uvloop package: pip install uvloop (or leave --loop auto)")
    host = address(args.host)
    access = Access(_keys(args), args.public_page, loopback_hosts(host))
    limits = Limits(max_batch_size=args.max_batch_size, batch_timeout_ms=args.batch_timeout_ms,
                    max_queue=args.max_queue, max_body_bytes=int(args.max_body_mb * 2**20),
                    max_inputs=args.max_inputs, timeout=args.timeout, read_timeout=args.read_timeout,
                    max_connections=args.max_connections)
    slots = [open_slot(model, args.registry, args.device) for model in args.models]
    names = [slot.name for slot in slots]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ZooError(f"two models would be served as {', '.join(twice)}; name one ALIAS=MODEL")
    for slot in slots:
        following = f", following {slot.follows}@latest" if slot.follows else ""
        print(f"zoo: {slot.name}: weights {slot.current.source.describe()}{following}", file=sys.stderr)
    sock = bind(host, args.port)
    host, port = sock.getsockname()[:2]
    guarded = f"; {len(access.keys)} API key(s) required" if access.keys else ""
    print(f"zoo serve: http://{host}:{port}/ serving {', '.join(names)}{guarded} (Ctrl-C or SIGTERM stops)",
          flush=True)
    config = {**server_config(limits), "loop": args.loop}
    quiet_floods()
    # uvicorn drains the requests in flight on SIGTERM, then raises the signal again: here, to no effect.
    signal.signal(signal.SIGTERM, lambda *_: None)
    sys.setswitchinterval(SWITCH_INTERVAL)
    if args.workers == 1:
        app = create(slots, args.registry, limits, args.poll, access)
        freeze()
        uvicorn.Server(uvicorn.Config(app, **config)).run(sockets=[sock])
    else:
        os.environ["ZOO_SERVE_SETTINGS"] = settings_json(args.models, args.device, limits, args.poll, args.disabled,
                                                         args.strict, access)
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="zoo-serve-metrics-"))
        uvicorn.run("zoo_serve.app:from_environment", factory=True, workers=args.workers, fd=sock.fileno(), **config)
    print("zoo serve: stopped", file=sys.stderr)
    return 0


def freeze() -> None:
    """Move what is alive now (the models, torch, the app: some 200,000 objects) out of the garbage
    collector's sight, once the models are loaded: full collections of that heap paused the event loop
    and set the tail latency (mnist-mlp, 64 clients: p99 216-219 ms before, 88-90 ms after)."""
    import gc

    gc.collect()
    gc.freeze()


def _keys(args: argparse.Namespace) -> tuple[str, ...]:
    """The API keys of --api-key, --api-keys-file and $ZOO_SERVE_API_KEY; a key is refused when empty
    or with whitespace inside (never printed)."""
    keys = [*args.api_key, *([os.environ["ZOO_SERVE_API_KEY"]] if os.environ.get("ZOO_SERVE_API_KEY") else [])]
    if args.api_keys_file:
        try:
            text = open(args.api_keys_file, encoding="utf-8").read(1 << 20)
        except (OSError, UnicodeDecodeError) as exc:
            raise ZooError(f"--api-keys-file {args.api_keys_file}: cannot read it ({exc})") from None
        keys += [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]
        if not keys:
            raise ZooError(f"--api-keys-file {args.api_keys_file} holds no key")
    for number, key in enumerate(keys, 1):
        if not key or len(key) > 4096 or any(c.isspace() or not c.isprintable() for c in key):
            raise ZooError(f"API key {number} is empty, longer than 4096 characters, or holds a space or an "
                           "unprintable character")
    return tuple(dict.fromkeys(keys))


def _importable(module: str) -> bool:
    from importlib.util import find_spec

    return find_spec(module) is not None
