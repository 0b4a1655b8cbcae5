"""From modules to trained weights: ``zoo build`` (build, sweep), the run that plugins and callbacks
see (run), the loop (loop), checkpoints, run folders and torchrun (distributed)."""
