"""Evaluate any installed HEAR 2021 module: ``--model hear:<python.module>``.

The HEAR API (https://hearbenchmark.com/hear-api.html): a module exposes
``load_model(model_file_path="")`` returning a model with ``sample_rate``, ``scene_embedding_size``
and ``timestamp_embedding_size``; ``get_scene_embeddings(audio [n, N], model) -> [n, D]`` and
``get_timestamp_embeddings(audio, model) -> ([n, T, D_t], timestamps in ms [n, T])``.

The module loads its own weights, so ``--checkpoint PATH`` is handed to its ``load_model`` as
``model_file_path`` (the factory below sets ``loads_own_weights``; see
:func:`audiobench.models.loading.load_model`). Names are resolved by the ``"hear:"`` prefix resolver
of :data:`audiobench.registry.MODELS`, so they are not listed by ``audiobench list models``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import functools
import importlib
import importlib.metadata
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from audiobench.download import sha256_of
from audiobench.errors import CheckpointError, UnknownNameError
from audiobench.models.base import AudioModel, as_waveforms
from audiobench.models.cards import ModelCard
from audiobench.models.files_read import files_read_during
from audiobench.registry import RegistryEntry

PREFIX = "hear:"
API_FUNCTIONS = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
MODEL_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")
API_HINT = "A HEAR module defines load_model, get_scene_embeddings and get_timestamp_embeddings " \
           "(https://hearbenchmark.com/hear-api.html)."


class HEARModuleError(UnknownNameError):
    """A ``hear:<module>`` name whose module cannot be imported or does not implement the HEAR API."""


def _where(error: BaseException) -> str:
    """``file:line`` where ``error`` was raised (outside the import machinery), or ``""``."""
    if isinstance(error, SyntaxError) and error.filename:
        return f"{error.filename}:{error.lineno}"
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith("<frozen") and f.filename != importlib.__file__]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def import_hear_module(module_name: str) -> ModuleType:
    """Import ``module_name`` and check that it defines the three HEAR API functions.

    A module that is not installed and one that is installed but fails while importing (a missing
    dependency, an exception in its code) are told apart: the second names the error and where it happened.
    """
    if not module_name:
        raise HEARModuleError("No module named after 'hear:'.", hint="Use --model hear:<python.module>.")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or anything the module raises while importing
        missing = error.name if isinstance(error, ModuleNotFoundError) else None
        if missing is not None and (module_name == missing or module_name.startswith(missing + ".")):
            raise HEARModuleError(
                f"HEAR module {module_name!r} cannot be imported: no module named {missing!r} is installed.",
                hint="Install the package that provides it (pip install ...) or put it on PYTHONPATH.",
            ) from error
        where = _where(error)
        raise HEARModuleError(
            f"HEAR module {module_name!r} is installed but failed while importing: {type(error).__name__}: "
            f"{error}{f' (at {where})' if where else ''}.",
            hint="Fix the module's import error (e.g. install its missing dependency); set AUDIOBENCH_DEBUG=1 "
                 "to see the traceback.",
        ) from error
    missing_api = [name for name in API_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing_api:
        raise HEARModuleError(f"Module {module_name!r} does not implement the HEAR API: it has no "
                              f"{', '.join(missing_api)}.", hint=API_HINT)
    return module


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    """Top-level package -> distributions, read once per process (scanning every installed package takes ~1 s)."""
    return dict(importlib.metadata.packages_distributions())


def distribution_of(module_name: str) -> tuple[str | None, str | None]:
    """Name and version of the installed distribution providing ``module_name`` (None when unknown)."""
    top = module_name.split(".")[0]
    for dist in _packages_distributions().get(top, []):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None, None


def installed_files_sha256(dist: str | None) -> str | None:
    """sha256 of a distribution's RECORD (the hash of every file pip installed for it)."""
    if dist is None:
        return None
    try:
        record = importlib.metadata.distribution(dist).read_text("RECORD")
    except importlib.metadata.PackageNotFoundError:
        return None
    return hashlib.sha256(record.encode()).hexdigest() if record else None


def package_code_sha256(module: ModuleType) -> str | None:
    """sha256 of the Python sources of ``module``'s top-level package (or of its single file)."""
    top = sys.modules.get(module.__name__.split(".")[0], module)
    locations = list(getattr(top, "__path__", []))
    if not locations:
        module_file = getattr(module, "__file__", None)
        return _path_sha256(Path(module_file)) if module_file else None
    digest = hashlib.sha256()
    for location in sorted(locations):
        root = Path(location)
        for file in sorted(root.rglob("*.py")):
            digest.update(f"{file.relative_to(root)}\0{sha256_of(file)}\n".encode())
    return digest.hexdigest()


def _path_sha256(path: Path | None) -> str | None:
    """sha256 of a file, or of the relative paths and hashes of a directory's files."""
    if path is None or not path.exists():
        return None
    if path.is_file():
        return sha256_of(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}\0{sha256_of(file)}\n".encode())
    return digest.hexdigest()


def resolve(name: str) -> RegistryEntry[Any]:
    """Registry entry for ``hear:<module>``, built on the fly (the prefix resolver of MODELS).

    Its card has ``sample_rate`` and ``embedding_dim`` 0: they are known only once the module's
    ``load_model`` has run; the loaded model's card carries the real values.
    """
    module_name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    import_hear_module(module_name)  # fails early, naming what is wrong
    dist, version = distribution_of(module_name)
    provider = f"{dist} {version}" if dist else "no installed distribution found"
    card = ModelCard(
        name=name, family="hear", sample_rate=0, embedding_dim=0,
        description=f"HEAR 2021 API module {module_name} ({provider})",
        config={"module": module_name, "distribution": dist, "version": version,
                "installed_files_sha256": installed_files_sha256(dist)},
    )
    return RegistryEntry(name=name, target=build_hear_model, info=card, source=dist or module_name)


class HEARModuleModel(AudioModel):
    """An AudioModel whose embeddings come from a HEAR module's API functions."""

    def __init__(self, card: ModelCard, module: ModuleType, hear_model: Any, model_file: Path | None,
                 weight_files: list[Path] | None = None) -> None:
        super().__init__(card, hear_model if isinstance(hear_model, nn.Module) else None)
        self.module, self.hear_model = module, hear_model
        self.checkpoint_path = str(model_file) if model_file is not None else None
        self.checkpoint_sha256 = _path_sha256(model_file)
        self.module_sha256 = package_code_sha256(module)
        # every data file load_model read (its own weights too), by name and sha256
        self.weight_files = {path.name: sha256_of(path) for path in weight_files or []}

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = as_waveforms(waveforms, self.device)
        embeddings = torch.as_tensor(self.module.get_scene_embeddings(waveforms, self.hear_model))
        if embeddings.shape != (waveforms.shape[0], self.embedding_dim):
            raise ValueError(f"{self.card.name}: get_scene_embeddings returned shape {tuple(embeddings.shape)}, "
                             f"expected {(waveforms.shape[0], self.embedding_dim)}")
        return embeddings

    def embed_frames(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Timestamp embeddings ``[B, T, D_t]`` and the timestamps (ms) of the first sound ``[T]``."""
        waveforms = as_waveforms(waveforms, self.device)
        embeddings, timestamps = self.module.get_timestamp_embeddings(waveforms, self.hear_model)
        timestamps = torch.as_tensor(timestamps)
        return torch.as_tensor(embeddings), (timestamps[0] if timestamps.dim() == 2 else timestamps)

    def fingerprint(self) -> dict[str, Any]:
        config = self.card.config
        return {
            "model": self.card.name, "module": config["module"], "distribution": config.get("distribution"),
            "version": config.get("version"), "installed_files_sha256": config.get("installed_files_sha256"),
            "module_sha256": self.module_sha256, "checkpoint_sha256": self.checkpoint_sha256,
            "weight_files": sorted(self.weight_files.items()), "sample_rate": self.sample_rate,
            "scene_embedding_size": self.embedding_dim,
            "timestamp_embedding_size": config.get("timestamp_embedding_size"),
        }

    def prepare_for_inference(self) -> "HEARModuleModel":
        """Eval mode only: the module's own network is left in the layout it chose."""
        self.eval()
        return self


def build_hear_model(card: ModelCard, checkpoint: str | Path | None = None) -> HEARModuleModel:
    """Import the card's module and call its ``load_model`` (with ``checkpoint`` as model_file_path)."""
    module_name = card.config["module"]
    module = import_hear_module(module_name)
    model_file = Path(checkpoint).expanduser() if checkpoint else None
    if model_file is not None and not model_file.exists():
        raise CheckpointError(f"Model file {model_file} does not exist.", hint="Check the path given to --checkpoint.")
    hear_model, files = files_read_during(
        lambda: module.load_model(str(model_file)) if model_file is not None else module.load_model())
    missing = [name for name in MODEL_ATTRIBUTES if not hasattr(hear_model, name)]
    if missing:
        raise HEARModuleError(f"The model returned by {module_name}.load_model has no {', '.join(missing)}.",
                              hint=API_HINT)
    card = dataclasses.replace(
        card, sample_rate=int(hear_model.sample_rate), embedding_dim=int(hear_model.scene_embedding_size),
        config={**card.config, "timestamp_embedding_size": int(hear_model.timestamp_embedding_size)},
    )
    return HEARModuleModel(card, module, hear_model, model_file, files)


build_hear_model.loads_own_weights = True  # type: ignore[attr-defined]
