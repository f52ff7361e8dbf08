"""``audiobench.hear.<model>``: one importable HEAR 2021 module per registered audiobench model.

``importlib.import_module("audiobench.hear.mn04")`` returns a module with ``load_model``,
``get_scene_embeddings`` and ``get_timestamp_embeddings`` (see :mod:`audiobench.hear_api`, which also
defines the name mangling: ``logmel-stats`` -> ``audiobench.hear.logmel_stats``). The submodules are
made on demand by a meta-path finder installed when this package is imported; names that are not
registered models fall through to the normal ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from types import ModuleType


class _HEARModuleLoader(importlib.abc.Loader):
    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        from audiobench.hear_api import build_module

        return build_module(spec.name, self.model_name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module is complete when created."""


class _HEARModuleFinder(importlib.abc.MetaPathFinder):
    """Finds ``audiobench.hear.<name>`` for every registered model name (or its mangled form)."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or not name:
            return None
        from audiobench.hear_api import model_name_for

        model_name = model_name_for(name)
        if model_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _HEARModuleLoader(model_name))


if not any(isinstance(finder, _HEARModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_HEARModuleFinder())
