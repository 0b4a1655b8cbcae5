"""The Open Inference Protocol (KServe v2, REST) for zoo models: metadata in the model's own terms,
and typed tensors in and out, JSON or in the binary tensor extension Triton's clients use by default.

One model input, ``input``: the raw values ``zoo predict`` takes in a .npy (images as UINT8 pixels
0-255, token ids as INT64), a batch of them, in the shape ``[-1, *one input]``. One output,
``output``: the model's FP32 output for the batch, after the recorded evaluation transforms."""

from __future__ import annotations

import json
import math

import numpy as np

from zoo.api import InputSpec, ZooError

DATATYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
             "FP32": "float32", "FP64": "float64"}
HEADER = "Inference-Header-Content-Length"


def datatype(spec: InputSpec) -> str:
    """The v2 datatype of one input of ``spec``: the raw values, before scaling."""
    return next(name for name, np_name in DATATYPES.items() if np_name == spec.raw_dtype)


def metadata(name: str, versions: list[str], spec: InputSpec, output_shape: list[int]) -> dict:
    """``GET /v2/models/{name}``."""
    return {"name": name, "versions": versions, "platform": "pytorch_zoo",
            "inputs": [{"name": "input", "datatype": datatype(spec), "shape": [-1, *spec.shape]}],
            "outputs": [{"name": "output", "datatype": "FP32", "shape": [-1, *output_shape]}]}


def decode(body: bytes, header_length: str | None, spec: InputSpec, max_inputs: int) -> tuple[np.ndarray, dict]:
    """The input batch and the request's JSON header from an infer request body; ZooError says what
    is wrong with it, checked before any array is made: the declared datatype, a shape of at most
    ``max_inputs`` inputs of the spec's shape, and data of exactly that size."""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            raise ZooError(f"{HEADER} {header_length[:20]!r} is not a number") from None
        if not 0 < length <= len(body):
            raise ZooError(f"{HEADER} {length} does not fit a body of {len(body)} bytes")
        head, binary = body[:length], body[length:]
    else:
        head, binary = body, b""
    request = parse_json(head)
    inputs = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ZooError("a request has \"inputs\": a list of one tensor, named \"input\"")
    tensor = inputs[0]
    want = datatype(spec)
    if tensor.get("name") != "input":
        raise ZooError(f"the model's input is named \"input\", not {str(tensor.get('name'))[:40]!r}")
    if tensor.get("datatype") != want:
        raise ZooError(f"input datatype is {want} ({spec.describe()}), not {str(tensor.get('datatype'))[:20]!r}")
    shape = tensor.get("shape")
    if (not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape)
            or tuple(shape[1:]) != spec.shape or not 1 <= shape[0] <= max_inputs):
        raise ZooError(f"input shape is [N, {', '.join(map(str, spec.shape))}] with N from 1 to {max_inputs}, "
                       f"not {str(shape)[:60]}")
    count, dtype = math.prod(shape), np.dtype(DATATYPES[want])
    parameters = tensor.get("parameters") or {}
    if "binary_data_size" in parameters:
        size = parameters["binary_data_size"]
        if size != count * dtype.itemsize or len(binary) != size:
            raise ZooError(f"binary input of {len(binary)} bytes; shape {shape} of {want} is "
                           f"{count * dtype.itemsize} bytes")
        array = np.frombuffer(binary, dtype=dtype).copy()
    else:
        data = tensor.get("data")
        if not isinstance(data, list):
            raise ZooError("the input has no \"data\" (a flat list of values in row-major order)")
        try:
            with np.errstate(over="ignore"):  # 1e308 in FP32 is inf, refused with every non-finite value
                array = np.asarray(data, dtype=dtype).reshape(-1)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ZooError(f"input data is not {want} values: {exc}") from None
        if array.size != count:
            raise ZooError(f"input data has {array.size} values; shape {shape} has {count}")
    return array.reshape(shape), request


def parse_json(body: bytes) -> object:
    """A request body's JSON: strict JSON, so NaN and Infinity are refused, and bounded in depth."""
    def refuse(token: str) -> object:
        raise ZooError(f"the request holds {token}, which is not a JSON number: send finite numbers")

    try:
        return json.loads(body, parse_constant=refuse)
    except RecursionError:
        raise ZooError("the request's JSON nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ZooError(f"the request is not JSON: {exc}") from None


def binary_outputs(request: dict) -> bool:
    """Whether the client asked for the output in the binary tensor extension."""
    asked = [o for o in request.get("outputs") or [] if isinstance(o, dict)]
    if asked:
        return any((o.get("parameters") or {}).get("binary_data") for o in asked if o.get("name") == "output")
    return bool((request.get("parameters") or {}).get("binary_data_output"))


def encode(name: str, version: str, request: dict, out: np.ndarray) -> tuple[bytes, dict[str, str]]:
    """An infer response body and its extra headers."""
    output = {"name": "output", "datatype": "FP32", "shape": list(out.shape)}
    response = {"model_name": name, "model_version": version, "outputs": [output]}
    if isinstance(request.get("id"), str):
        response["id"] = request["id"][:200]
    data = np.ascontiguousarray(out, dtype=np.float32)
    if not binary_outputs(request):
        output["data"] = data.reshape(-1).tolist()
        return json.dumps(response).encode(), {"content-type": "application/json"}
    output["parameters"] = {"binary_data_size": data.nbytes}
    head = json.dumps(response).encode()
    return head + data.tobytes(), {"content-type": "application/octet-stream", HEADER: str(len(head))}
