"""zoo's export formats (``zoo export --format NAME``): ONNX, torch.export programs and TorchScript.
A plugin adds a format the same way: an exporter component (see hookspecs.register_exporters)."""

from zoo.api import hookimpl


@hookimpl
def register_exporters(register):
    register("onnx", "zoo_export.formats:Onnx")
    register("torch-export", "zoo_export.formats:TorchExport")
    register("torchscript", "zoo_export.formats:TorchScript")
