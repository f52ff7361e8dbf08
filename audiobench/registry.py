"""Name -> factory registries for models, datasets, protocols and metrics.

Entries point at their implementation with a lazy ``"package.module:attribute"`` string, so listing
what is registered never imports torch or a model file. Another installed package adds entries
without editing audiobench by declaring an entry point in one of the groups
``audiobench.models``, ``audiobench.datasets``, ``audiobench.protocols`` or ``audiobench.metrics``:

.. code-block:: toml

    [project.entry-points."audiobench.models"]
    my-model = "my_package.audiobench_plugin:MY_MODEL"   # a ModelSpec, or a factory callable

An entry point may resolve to a :class:`RegistryEntry` (or anything with ``name``/``target``/``info``
attributes such as :class:`audiobench.models.cards.ModelSpec`) or to a plain callable, which becomes
the factory of an entry with that entry point's name.

A registry may also resolve whole families of names on demand: ``register_prefix("hear:", target)``
sends every unregistered name starting with ``hear:`` to ``target(name) -> RegistryEntry`` (a lazy
``"module:function"`` string as well). Such names are not listed by :meth:`Registry.names`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

from audiobench.errors import AudiobenchError, UnknownNameError

T = TypeVar("T")


def import_target(target: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attribute.split(".") if attribute else []:
        obj = getattr(obj, part)
    return obj


@dataclass
class RegistryEntry(Generic[T]):
    """One registered name: a lazy target plus light metadata (``info``) shown by ``list``."""

    name: str
    target: str | Callable[..., T]
    info: Any = None
    source: str = "audiobench"

    def load(self) -> Callable[..., T]:
        """Return the factory, importing its module on first use."""
        if isinstance(self.target, str):
            self.target = import_target(self.target)
        return self.target


@dataclass
class Registry(Generic[T]):
    """A named collection of lazily imported factories of one kind."""

    kind: str
    entry_point_group: str
    _entries: dict[str, RegistryEntry[T]] = field(default_factory=dict)
    _plugins_loaded: bool = False
    _plugin_error: AudiobenchError | None = None
    _prefixes: dict[str, str | Callable[[str], RegistryEntry[T]]] = field(default_factory=dict)

    def register(self, name: str, target: str | Callable[..., T], info: Any = None,
                 source: str = "audiobench") -> RegistryEntry[T]:
        """Add ``name``; registering a name twice is an error (plugins cannot shadow built-ins)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered by {self._entries[name].source}")
        entry = RegistryEntry(name=name, target=target, info=info, source=source)
        self._entries[name] = entry
        return entry

    def register_prefix(self, prefix: str, resolver: str | Callable[[str], RegistryEntry[T]]) -> None:
        """Resolve unregistered names starting with ``prefix`` with ``resolver(name) -> RegistryEntry``."""
        if prefix in self._prefixes:
            raise ValueError(f"{self.kind} name prefix {prefix!r} is already registered")
        self._prefixes[prefix] = resolver

    def _resolve_prefixed(self, name: str) -> RegistryEntry[T] | None:
        for prefix in sorted(self._prefixes, key=len, reverse=True):  # the longest matching prefix wins
            if name.startswith(prefix):
                resolver = self._prefixes[prefix]
                if isinstance(resolver, str):
                    resolver = self._prefixes[prefix] = import_target(resolver)
                return resolver(name)
        return None

    def _load_plugins(self) -> None:
        """Register the entry points of group ``entry_point_group``, all or none.

        A plugin that fails to import, or names something already registered, raises an
        :class:`AudiobenchError` naming the distribution and the entry point; the registry is left as it
        was and every later call raises the same error (never a half-loaded registry).
        """
        if self._plugins_loaded:
            return
        if self._plugin_error is not None:
            raise self._plugin_error
        pending: list[tuple[str, Any, Any, str, Any]] = []  # (name, target, info, source, entry point)
        try:
            for ep in entry_points(group=self.entry_point_group):
                source = ep.dist.name if ep.dist is not None else ep.value
                try:
                    obj = ep.load()
                except Exception as error:  # noqa: BLE001 - any failure inside third-party code
                    raise self._plugin_failure(
                        ep, source, f"cannot be imported ({type(error).__name__}: {error})") from error
                if hasattr(obj, "target") and hasattr(obj, "name"):
                    pending.append((obj.name, obj.target, getattr(obj, "info", None), source, ep))
                else:
                    pending.append((ep.name, obj, None, source, ep))
            taken = {name: entry.source for name, entry in self._entries.items()}
            for name, _, _, source, ep in pending:
                if name in taken:
                    raise self._plugin_failure(
                        ep, source, f"registers the {self.kind} name {name!r}, already registered by {taken[name]}")
                taken[name] = source
        except AudiobenchError as error:
            self._plugin_error = error
            raise
        for name, target, info, source, _ in pending:
            self.register(name, target, info, source=source)
        self._plugins_loaded = True

    def _plugin_failure(self, ep: Any, source: str, problem: str) -> AudiobenchError:
        return AudiobenchError(
            f"The {self.kind} plugin entry point {ep.name!r} = {ep.value!r} (group {self.entry_point_group}, "
            f"distribution {source!r}) {problem}.",
            hint=f"Fix the plugin, or uninstall it (`pip uninstall {source}`) to use audiobench without it.",
        )

    def entry(self, name: str) -> RegistryEntry[T]:
        """The entry registered as ``name``; unknown names get the list of known ones."""
        self._load_plugins()
        if name not in self._entries:
            resolved = self._resolve_prefixed(name)
            if resolved is not None:
                return resolved
            known = ", ".join(sorted(self._entries) + [f"{p}..." for p in sorted(self._prefixes)]) or "none"
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.",
                hint=f"Known {self.kind}s: {known}. Run `audiobench list {self.kind}s` for details.",
            )
        return self._entries[name]

    def get(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name`` (imported now)."""
        return self.entry(name).load()

    def names(self) -> list[str]:
        """Sorted registered names, built-ins and plugins."""
        self._load_plugins()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[RegistryEntry[T]]:
        return iter(self.entry(n) for n in self.names())

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries


MODELS: Registry[Any] = Registry("model", "audiobench.models")
DATASETS: Registry[Any] = Registry("dataset", "audiobench.datasets")
PROTOCOLS: Registry[Any] = Registry("protocol", "audiobench.protocols")
METRICS: Registry[Any] = Registry("metric", "audiobench.metrics")


def _register_builtins() -> None:
    # Imported here (light modules only: cards are plain data) to keep `audiobench list` fast.
    from audiobench.models.catalog import builtin_model_specs

    for spec in builtin_model_specs():
        MODELS.register(spec.name, spec.target, spec.info)
    MODELS.register_prefix("hear:", "audiobench.models.hear_module:resolve")  # any installed HEAR 2021 module
    DATASETS.register("esc50", "audiobench.datasets.esc50:load_esc50")
    DATASETS.register("synthetic", "audiobench.datasets.synthetic:load_synthetic")
    DATASETS.register("tau22", "audiobench.datasets.tau22:load_tau22")
    DATASETS.register("fsd50k", "audiobench.datasets.fsd50k:load_fsd50k")
    DATASETS.register("openmic", "audiobench.datasets.openmic:load_openmic")
    DATASETS.register("audioset", "audiobench.datasets.audioset:load_audioset")
    DATASETS.register("hear", "audiobench.datasets.hear:load_hear")
    DATASETS.register("audiofolder", "audiobench.datasets.generic:load_audiofolder")
    DATASETS.register("csv", "audiobench.datasets.generic:load_csv")
    DATASETS.register("desed", "audiobench.datasets.desed:load_desed")
    PROTOCOLS.register("linear-probe", "audiobench.protocols.probe:LinearProbe")
    PROTOCOLS.register("linear-probe-streaming", "audiobench.protocols.streaming:StreamingLinearProbe")
    PROTOCOLS.register("mlp-probe", "audiobench.protocols.mlp:MLPProbe")
    PROTOCOLS.register("pretrained-head", "audiobench.protocols.pretrained_head:PretrainedHead")
    PROTOCOLS.register("frame-linear", "audiobench.events.heads:FrameLinear")
    PROTOCOLS.register("frame-gru", "audiobench.events.heads:FrameGRU")
    PROTOCOLS.register("finetune", "audiobench.finetune.run:run_finetune")  # dispatched by runner.run
    METRICS.register("accuracy", "audiobench.metrics:accuracy")
    METRICS.register("class-macro-accuracy", "audiobench.metrics:class_macro_accuracy")
    METRICS.register("mAP", "audiobench.metrics:mean_average_precision")
    METRICS.register("aucroc", "audiobench.metrics_hear:macro_auc")
    METRICS.register("d-prime", "audiobench.metrics_hear:d_prime_per_class")
    METRICS.register("d-prime-of-mean-auc", "audiobench.metrics_hear:d_prime_of_mean_auc")
    METRICS.register("mAP-hear", "audiobench.metrics_hear:mean_average_precision_zero_filled")


_register_builtins()
