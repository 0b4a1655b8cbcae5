"""zoo's own run features, each a plugin on the lifecycle hooks that can be switched off by name
(``zoo -p no:progress build ...`` or ZOO_PLUGINS_DISABLE=progress): console, progress, history,
checkpoints, plot and store."""
