"""From settings to modules: every component node built through the registry and located in the
recipe (assembler), the built parts checked on one batch (parts), and the pieces they rely on:
datasets (data), batch transforms, numeric precision and starting from trained weights (finetune)."""
