"""The two request protocols ``zoo serve`` speaks, as specs over one batched pipeline (LitServe's
LitSpec): each decodes its requests into a batch of model inputs and encodes the outputs the pipeline
gives back. ``V1``: zoo's own API, answering exactly as ``zoo predict --json``; ``V2``: the Open
Inference Protocol's infer (zoo_serve.protocol). A request's inputs are values -- numbers, nested
lists, token ids, an uploaded file's bytes -- never a path on the server."""

from __future__ import annotations

import asyncio
import hmac
import io
import math
from dataclasses import dataclass, field
from typing import Protocol

import torch
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from zoo.api import InputSpec, ZooError, check_top_k, decode_image, interpret, prepare, read_npy
from zoo_serve import protocol
from zoo_serve.models import Served


@dataclass(frozen=True)
class Limits:
    """How much one server takes on; every bound a request could otherwise choose."""

    max_batch_size: int = 64  # inputs in one forward pass
    batch_timeout_ms: float = 2.0  # how long a batch waits to fill
    max_queue: int = 256  # requests in flight before new ones get 503
    max_body_bytes: int = 8 << 20  # of one request
    max_inputs: int = 256  # in one request
    max_image_pixels: int = 4_000_000  # of an uploaded image, checked before it is decoded
    timeout: float = 30.0  # seconds a request may take
    read_timeout: float = 10.0  # seconds a request's line and headers, then its body, may take to arrive
    max_connections: int = 1000  # open at once (fewer when the file-descriptor limit is lower)


@dataclass(frozen=True)
class Access:
    """Who may call: with ``keys``, every request but the health checks (and the page, with
    ``public_page``) must carry ``Authorization: Bearer KEY`` with one of them."""

    keys: tuple[str, ...] = ()
    public_page: bool = False
    hosts: tuple[str, ...] = ()  # the Host header's names a request may give (none: any)

    def host_allowed(self, host: str) -> bool:
        """Whether a request's Host header names this server: on a loopback address, a web page of
        another site cannot reach it by rebinding its own name to 127.0.0.1 (as Jupyter checks)."""
        if not self.hosts:
            return True
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return name.strip("[]").lower() in self.hosts

    def allows(self, path: str, authorization: str) -> bool:
        """Whether a request for ``path`` with this Authorization header may go on. Every key is
        compared in constant time, whichever matches."""
        if not self.keys or path in ("/v2/health/live", "/v2/health/ready") or self.public_page and path == "/":
            return True
        scheme, _, given = authorization.partition(" ")
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(given.strip().encode(), key.encode()) and scheme.lower() == "bearer"
        return matched


@dataclass(frozen=True)
class Decoded:
    """One request, decoded: its batch of model inputs, and what its answer needs besides the outputs."""

    x: torch.Tensor
    answer: dict = field(default_factory=dict)  # the spec's own: labels and top-k (v1), the asked outputs (v2)


class Spec(Protocol):
    """A request protocol: the POST routes it answers (with ``{name}``, and ``{version}`` where the
    protocol has one), how a request becomes a batch, and how the batch's outputs become a response;
    ``openapi`` describes its request and response for /docs."""

    routes: tuple[str, ...]
    summary: str
    openapi: dict

    async def decode(self, request: Request, spec: InputSpec, limits: Limits) -> Decoded: ...

    def encode(self, name: str, decoded: Decoded, outputs: list[torch.Tensor], served: Served) -> Response: ...


class V1:
    """zoo's API: JSON ``{"inputs": ..., "top_k": K}`` or a multipart ``file`` (an image or a .npy),
    answered with one prediction per input, as ``zoo predict --json`` gives them."""

    routes = ("/v1/models/{name}/predict",)
    summary = "Predict: the answer of zoo predict --json"
    openapi = {
        "parameters": [{"name": "top_k", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "default": 5}}],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "required": ["inputs"], "properties": {
                "inputs": {"description": "values, never paths: one input or a list of them, as nested lists of "
                                          "numbers (an image's 8-bit pixels, an array) or token ids"},
                "top_k": {"type": "integer", "minimum": 1, "default": 5}}}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "description": "an image or a .npy array"}}}}}},
        "responses": {"200": {"description": "one prediction per input", "content": {"application/json": {
            "schema": {"type": "array", "items": {"type": "object", "properties": {
                "input": {"description": "the input's index, or the uploaded file's name"},
                "top": {"type": "array", "items": {"type": "object", "properties": {
                    "label": {"type": "string"}, "index": {"type": "integer"}, "probability": {"type": "number"}}}},
                "tokens": {"type": "array", "items": {"type": "integer"}},
                "probabilities": {"type": "array", "items": {"type": "number"}},
                "values": {"type": "array", "items": {"type": "number"}},
                "warning": {"type": "string"}}}}}}},
            "400": {"description": "the input does not fit the model: {\"error\": \"...\"}"}},
    }

    async def decode(self, request: Request, spec: InputSpec, limits: Limits) -> Decoded:
        top_k = _top_k(request.query_params.get("top_k", "5"))
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=2, max_part_size=limits.max_body_bytes)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ZooError("send the input as the multipart field 'file' (an image or a .npy array)")
            label, raw = upload.filename or "file", await upload.read()
            x = finite(await asyncio.to_thread(_from_file, raw, label, spec, limits))
            labels = [label] * len(x)
        else:
            body = protocol.parse_json(await request.body())
            if not isinstance(body, dict) or "inputs" not in body:
                raise ZooError('send JSON {"inputs": ...} (token ids or nested lists of numbers), or a multipart '
                               "field 'file'")
            top_k = body.get("top_k", top_k)
            x = finite(prepare(_values(body["inputs"]), spec))
            labels = list(range(len(x)))
        check_top_k(top_k)
        if len(x) > limits.max_inputs:
            raise ZooError(f"{len(x)} inputs in one request; this server takes at most {limits.max_inputs}")
        return Decoded(x, {"labels": labels, "top_k": top_k})

    def encode(self, name: str, decoded: Decoded, outputs: list[torch.Tensor], served: Served) -> Response:
        finite(torch.stack(outputs), "the model's output")
        top_k = decoded.answer["top_k"]
        results = [{"input": label, **interpret(out[None], one[None], top_k, served.known)[0]}
                   for label, one, out in zip(decoded.answer["labels"], decoded.x, outputs)]
        return JSONResponse(results, headers={"x-zoo-model-version": served.version})


class V2:
    """The Open Inference Protocol's infer: one tensor ``input`` in, one ``output`` out, JSON or in
    the binary tensor extension."""

    routes = ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer")
    summary = "Infer: the Open Inference Protocol (KServe v2)"
    _tensor = {"type": "object", "required": ["name", "shape", "datatype"], "properties": {
        "name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
        "datatype": {"type": "string", "enum": list(protocol.DATATYPES)}, "parameters": {"type": "object"},
        "data": {"type": "array", "description": "the values in row-major order (or binary_data_size in parameters, "
                                                 "the bytes after the JSON header)"}}}
    openapi = {
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["inputs"], "properties": {
                "id": {"type": "string"}, "parameters": {"type": "object"},
                "inputs": {"type": "array", "items": _tensor, "description": "one tensor, named input"},
                "outputs": {"type": "array", "items": {"type": "object"}}}}}}},
        "responses": {"200": {"description": "the model's output for the batch", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
                "outputs": {"type": "array", "items": _tensor}}}}}},
            "400": {"description": "the request does not fit the model: {\"error\": \"...\"}"}},
    }

    async def decode(self, request: Request, spec: InputSpec, limits: Limits) -> Decoded:
        array, asked = protocol.decode(await request.body(), request.headers.get(protocol.HEADER), spec,
                                       limits.max_inputs)
        return Decoded(finite(prepare(array, spec)), {"request": asked})

    def encode(self, name: str, decoded: Decoded, outputs: list[torch.Tensor], served: Served) -> Response:
        out = finite(torch.stack(outputs), "the model's output")
        body, headers = protocol.encode(name, served.version, decoded.answer["request"], out.numpy())
        return Response(body, headers=headers)


SPECS: tuple[Spec, ...] = (V1(), V2())


def finite(x: torch.Tensor, what: str = "the inputs") -> torch.Tensor:
    """``x`` when every number in it is finite: NaN, infinities and numbers beyond the model's dtype
    (1e309, and ±1e308 in float32) are refused, and an answer is always finite JSON."""
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        if what == "the inputs":
            raise ZooError("the inputs hold NaN or infinite numbers (or numbers beyond float32's ±3.4e38): send "
                           "finite numbers")
        raise ZooError(f"{what} is not finite (NaN or infinite) for these inputs")
    return x


def _values(inputs: object) -> object:
    """``inputs`` when they hold no text: a string could name a file on the server, which ``prepare``
    (zoo.predict's local convenience) would open."""
    pending = [inputs]
    while pending:
        item = pending.pop()
        if isinstance(item, (str, bytes)):
            raise ZooError("inputs are values -- numbers, nested lists of numbers, token ids -- not text; send a "
                           "file as the multipart field 'file'")
        if isinstance(item, list):
            pending.extend(item)
    return inputs


def _top_k(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ZooError(f"top_k {text[:20]!r} is not a whole number") from None


def _from_file(raw: bytes, label: str, spec: InputSpec, limits: Limits) -> torch.Tensor:
    """An uploaded image or .npy file as a batch of inputs, read as ``zoo predict`` reads files."""
    if raw.startswith(b"\x93NUMPY"):
        return prepare(read_npy(io.BytesIO(raw), math.prod(spec.shape) * limits.max_inputs), spec)
    if spec.kind != "image":
        raise ZooError(f"{label}: the model takes {spec.describe()}; send a .npy array or JSON")
    return prepare(decode_image(io.BytesIO(raw), spec, label, limits.max_image_pixels), spec)

