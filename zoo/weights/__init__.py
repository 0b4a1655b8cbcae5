"""Trained models as files: the safetensors format with its typed, versioned metadata (format,
metadata), the local store of builds (store), names resolved to files (locate) and files rebuilt
into ready models (load)."""
