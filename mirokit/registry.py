"""One registry mechanism for every kind of component: backbones, text encoders, image spaces,
data sources, reward scorers and the `mirokit` commands (whose registry the command-line package owns).

A component registers itself where it is defined::

    @BACKBONES.register("rin", config=RINConfig, description="Recurrent Interface Network")
    class RINTrunk(nn.Module): ...

and is built from a config that names its kind (`model.backbone: {kind: rin, ...}`). Components are
found without a hand-kept list: on the first lookup of an unknown kind the registry imports, in
order, (1) the plugins (`mirokit.plugins` entry points of installed packages, and the modules named
in the MIROKIT_PLUGINS environment variable, comma-separated), then (2) every module of the package
that owns the registry (so a new built-in component is one new file). An unknown kind is a one-line
error listing the known ones.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

PLUGIN_GROUP = "mirokit.plugins"
PLUGIN_ENV = "MIROKIT_PLUGINS"
_plugins_loaded = False


def load_plugins() -> None:
    """Import every plugin once: `mirokit.plugins` entry points, then modules listed in MIROKIT_PLUGINS.

    An entry point may name a module (importing it registers its components) or a callable (called
    with no arguments). A plugin that fails to import raises a one-line ImportError naming it.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    targets = [(ep.name, ep.load) for ep in entry_points(group=PLUGIN_GROUP)]
    for name in filter(None, (s.strip() for s in os.environ.get(PLUGIN_ENV, "").split(","))):
        targets.append((name, lambda name=name: importlib.import_module(name)))
    for name, load in targets:
        try:
            loaded = load()
        except Exception as err:  # any failure of a third-party plugin is reported by name
            _plugins_loaded = False
            raise ImportError(f"mirokit plugin {name!r} failed to load: {type(err).__name__}: {err}") from None
        if callable(loaded) and not isinstance(loaded, type):  # a setup function, not a module
            loaded()


def import_package_modules(package: str) -> None:
    """Import every module (recursively) of `package`, so that their registrations run."""
    pkg = importlib.import_module(package)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=package + "."):
        importlib.import_module(info.name)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component: its kind, the object that builds it, its config class, a description."""

    kind: str
    target: T
    config: type | None
    description: str


class Registry(Generic[T]):
    """Kind name -> component, for one family of components (e.g. "backbone").

    Args:
        family: what the components are, used in messages ("backbone", "data source", ...).
        package: the mirokit package whose modules are imported to discover built-in components.
    """

    def __init__(self, family: str, package: str):
        self.family = family
        self.package = package
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = False

    def register(self, kind: str, *, config: type | None = None, description: str = "") -> Callable[[T], T]:
        """Decorator registering `target` (a class or factory) under `kind`.

        `config` is the kind's keyword-only config dataclass; its class attribute `kind` is set to
        `kind` so that a config instance knows which component it configures.
        """
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"{self.family} kind must be a non-empty string, got {kind!r}")

        def wrap(target: T) -> T:
            old = self._entries.get(kind)
            if old is not None and old.target is not target and _qualname(old.target) != _qualname(target):
                raise ValueError(f"{self.family} kind {kind!r} is already registered by {_qualname(old.target)}")
            if config is not None:
                config.kind = kind
            self._entries[kind] = Entry(kind, target, config, description)
            return target

        return wrap

    def _discover(self) -> None:
        load_plugins()
        if not self._discovered:
            self._discovered = True
            import_package_modules(self.package)

    def entry(self, kind: str) -> Entry[T]:
        """The entry registered under `kind`; unknown kinds raise a one-line ValueError listing the known ones."""
        if kind not in self._entries:
            self._discover()
        if kind not in self._entries:
            hint = f" (out-of-tree components: set {PLUGIN_ENV}=your.module)"
            raise ValueError(f"unknown {self.family} {kind!r}; known: {', '.join(self.known())}{hint}")
        return self._entries[kind]

    def unregister(self, kind: str) -> None:
        """Remove the component registered under `kind` (a test's temporary component); unknown kinds are ignored."""
        self._entries.pop(kind, None)

    def get(self, kind: str) -> T:
        """The class or factory registered under `kind`."""
        return self.entry(kind).target

    def config_class(self, kind: str) -> type:
        """The config dataclass of `kind` (a one-line error if the kind takes no config)."""
        entry = self.entry(kind)
        if entry.config is None:
            raise ValueError(f"{self.family} {kind!r} has no config class")
        return entry.config

    def known(self) -> list[str]:
        """Sorted names of every registered kind (after discovery)."""
        self._discover()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every registered entry, sorted by kind (after discovery)."""
        return [self._entries[k] for k in self.known()]

    def children(self, group: str = "") -> list[Entry[T]]:
        """The entries one level below `group` in the dotted kinds ("" = the kinds without a dot; "eval" ->
        "eval.rewards", not "eval.a.b"), sorted by kind (after discovery)."""
        prefix = f"{group}." if group else ""
        return [e for e in self.entries()
                if e.kind.startswith(prefix) and e.kind[len(prefix):] and "." not in e.kind[len(prefix):]]

    def call_children(self, group: str, *args: Any) -> None:
        """Call the target of every child of `group` (see `children`) with `args`, in order of kind."""
        for entry in self.children(group):
            entry.target(*args)

    def build(self, cfg: Any, **kwargs: Any) -> Any:
        """Instantiate the component configured by `cfg` (a config whose class has `kind`): target(cfg, **kwargs)."""
        return self.get(cfg.kind)(cfg, **kwargs)


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
