"""What exists: plugins found through entry points, the components, catalogs and commands they
register, the hooks they implement (and the events of a run, delivered through pluggy)."""

from zoo.registry.plugins import BUILTIN, Command, Component, Plugin, PluginWarning, Registry, default_registry

__all__ = ["BUILTIN", "Command", "Component", "Plugin", "PluginWarning", "Registry", "default_registry"]
