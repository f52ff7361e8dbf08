"""Implementation versions derived from the source code that computes a number.

A cached embedding (or complexity count) is only valid for the code that produced it. Instead of a
version number bumped by hand, the version is a hash of that code: the Python modules that define the
model's classes, its network's layers and its front-end, the audio pipeline and the extraction code,
plus every ``audiobench`` module they import at module level (transitively). Each module is hashed by its syntax tree
with docstrings removed, so comments, blank lines and documentation do not change the version, while
any change to what the code does does.

Modules that cannot change an output (errors, downloads, cache directories, the registry, dataset
loaders, published numbers, ...) are listed in :data:`NOT_OUTPUT_AFFECTING` and left out, so editing
them does not invalidate every cache. Library versions that change outputs (torch, numpy, soxr,
libsndfile) are part of the cache keys separately (see :mod:`audiobench.embeddings`).
"""

from __future__ import annotations

import ast
import hashlib
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import Iterable

PACKAGE = "audiobench"

#: Module-name prefixes whose code cannot change an embedding or a complexity count.
NOT_OUTPUT_AFFECTING: tuple[str, ...] = (
    "audiobench.errors", "audiobench.download", "audiobench.cachedir", "audiobench.atomic",
    "audiobench.registry", "audiobench.resources", "audiobench.cache", "audiobench.code_version",
    "audiobench.provenance", "audiobench.labels", "audiobench.results", "audiobench.runner",
    "audiobench.cli", "audiobench.tasks", "audiobench.datasets", "audiobench.protocols",
    "audiobench.metrics", "audiobench.report", "audiobench.models.cards", "audiobench.models.catalog",
    "audiobench.models.checkpoints", "audiobench.models.loading", "audiobench.device",
    # the storage layer returns the bytes it was given (crc32-verified); its on-disk format is versioned by
    # STORE_FORMAT / ENTRY_FORMAT / AUDIO_CACHE_FORMAT, which key the caches, so locking or compaction
    # changes do not throw away every cached clip
    "audiobench.shards", "audiobench.shard_compaction", "audiobench.sqlite_local",
)


def _excluded(module: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in NOT_OUTPUT_AFFECTING)


def _module_file(module: str) -> Path | None:
    """The source file of an ``audiobench`` module, found on disk without importing anything.

    (``importlib.util.find_spec("a.b.c")`` imports ``a.b``, which would import torch for most model modules.)
    """
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = Path(__file__).resolve().parent.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _source(module: str) -> str | None:
    path = _module_file(module)
    return path.read_text(encoding="utf-8") if path is not None else None


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


_PARSE_LOCK = threading.Lock()


PARSE_ATTEMPTS = 3


def _parse(source: str) -> ast.Module:
    """``ast.parse`` one caller at a time, tried again on CPython's spurious "AST constructor recursion depth
    mismatch" SystemError. CPython before 3.11.8 and 3.12.1 (gh-106905) kept the AST constructor's depth counter
    per interpreter, so a parse by another thread or library (outside this lock) during ours broke it; seen
    when probe splits, fitted in threads, derived versions, and once in a sweep test. Each attempt starts
    the counter afresh."""
    for attempt in range(PARSE_ATTEMPTS):
        try:
            with _PARSE_LOCK:
                return ast.parse(source)
        except SystemError as error:
            if "recursion depth mismatch" not in str(error) or attempt == PARSE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def source_digest(source: str) -> str:
    """sha256 of the docstring-free syntax tree of ``source`` (comments and layout do not count)."""
    tree = _strip_docstrings(_parse(source))
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()


def _module_level_nodes(tree: ast.Module) -> Iterable[ast.AST]:
    """Statements run when the module is imported (also inside top-level ``if``/``try`` blocks)."""
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, (ast.If, ast.Try)):
            todo.extend(node.body + node.orelse + getattr(node, "finalbody", []))
            todo.extend(h for handler in getattr(node, "handlers", []) for h in handler.body)


def _import_candidates(module: str, tree: ast.Module) -> set[str]:
    """``audiobench`` modules imported at module level by ``tree``.

    Imports inside functions are not followed: they are the lazy imports of factories (e.g. one adapter
    module building every model family), and code they reach at run time is found through the classes
    of the objects themselves (:func:`modules_of`).
    """
    return _imported_names(module, _module_level_nodes(tree))


def _imported_names(module: str, nodes: Iterable[ast.AST]) -> set[str]:
    """``audiobench`` names (modules, or names in them) imported by the statements ``nodes`` of ``module``."""
    found: set[str] = set()
    package = module if _is_package(module) else module.rpartition(".")[0]
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] == PACKAGE)
    return found  # names that may be modules; callers keep those that exist


@lru_cache(maxsize=None)
def _all_imports(module: str) -> frozenset[str]:
    """``audiobench`` modules imported anywhere in ``module``, also inside functions (lazy imports)."""
    source = _source(module)
    if source is None:
        return frozenset()
    names = _imported_names(module, ast.walk(_parse(source)))
    return frozenset(name for name in names if _exists(name))


def _is_package(module: str) -> bool:
    path = _module_file(module)
    return path is not None and path.name == "__init__.py"


def _exists(module: str) -> bool:
    return _module_file(module) is not None


MEMO_FORMAT = 1


def _memo_path(module: str, source: str) -> Path:
    """Where the parse of this exact source of ``module`` is remembered (parsing every module on every run costs
    ~0.5 s). The key holds the Python version (``ast.dump`` may change with it), the module name, whether it is
    a package, and the sha256 of the source."""
    from audiobench.cachedir import cache_subdir

    head = f"{MEMO_FORMAT}\0{sys.version_info[:2]}\0{module}\0{_is_package(module)}\0"
    key = hashlib.sha256(head.encode() + source.encode("utf-8")).hexdigest()
    return cache_subdir("code-digests") / f"{key}.json"


def _parsed(module: str, source: str) -> tuple[str, list[str]]:
    """(source digest, import candidates) of ``source``, from the memo when it verifies, else parsed now."""
    import json

    path = _memo_path(module, source)
    try:
        entry = json.loads(path.read_text())
        payload = [entry["digest"], entry["candidates"]]
        if entry["check"] == hashlib.sha256(json.dumps(payload).encode()).hexdigest():
            return entry["digest"], list(entry["candidates"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: parse again
    digest, candidates = source_digest(source), sorted(_import_candidates(module, _parse(source)))
    check = hashlib.sha256(json.dumps([digest, candidates]).encode()).hexdigest()
    try:
        from audiobench.atomic import atomic_write_bytes

        atomic_write_bytes(path, json.dumps({"digest": digest, "candidates": candidates, "check": check}).encode())
    except OSError:
        pass  # a read-only cache only costs the parse
    return digest, candidates


@lru_cache(maxsize=None)
def _module_info(module: str) -> tuple[str, frozenset[str]]:
    source = _source(module)
    if source is None:
        return "no-python-source", frozenset()
    digest, candidates = _parsed(module, source)
    return digest, frozenset(name for name in candidates if _exists(name))


def code_modules(roots: Iterable[str]) -> list[str]:
    """``roots`` plus the ``audiobench`` modules they import, transitively, minus the excluded ones."""
    todo = [m for m in roots if m.split(".")[0] == PACKAGE and not _excluded(m)]
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo.extend(m for m in _module_info(module)[1] if m not in seen and not _excluded(m))
    return sorted(seen)


def implementation_version(roots: Iterable[str]) -> str:
    """A short hash of the code of ``roots`` and everything they import (see the module docstring)."""
    digest = hashlib.sha256()
    for module in code_modules(roots):
        digest.update(f"{module}\0{_module_info(module)[0]}\n".encode())
    return digest.hexdigest()[:16]


def protocol_version(name: str) -> str | None:
    """A short hash of the code of the registered protocol ``name`` (the module defining it, the modules of its
    package it imports, also inside functions (the MLP probe's trainer, the fine-tuning trainer and recipes are
    imported lazily), and every other output-affecting module they import), None for an unregistered name.

    Result records carry it, so a record made by other protocol code (e.g. another solver) is told apart.
    """
    from audiobench.errors import UnknownNameError
    from audiobench.registry import PROTOCOLS

    try:
        module = getattr(PROTOCOLS.get(name), "__module__", None)
    except UnknownNameError:
        return None
    if module is None:
        return None
    package = module.rpartition(".")[0]  # e.g. audiobench.protocols, audiobench.finetune
    inside = (lambda m: m == package or m.startswith(package + ".") or m.startswith("audiobench.protocols"))
    digest, todo, seen = hashlib.sha256(), [module], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        imports = set(_module_info(current)[1]) | (_all_imports(current) if inside(current) else set())
        todo.extend(m for m in imports if m not in seen and (inside(m) or not _excluded(m)))
    for current in sorted(seen):
        digest.update(f"{current}\0{_module_info(current)[0]}\n".encode())
    return digest.hexdigest()[:16]


def model_code_changed(model: dict) -> bool | None:
    """Whether the model code that wrote a record's ``model`` block differs from today's: its fingerprint's
    implementation version against :func:`implementation_version` of its ``code_roots`` now. None when the block
    has no ``code_roots`` (records before December 2026, models that version their code some other way)."""
    roots = model.get("code_roots")
    if not roots:
        return None
    return implementation_version(roots) != (model.get("fingerprint") or {}).get("implementation")


def input_pipeline_changed(record: dict) -> bool | None:
    """Whether the code between an audio file and the model's input (decoding, resampling, batching: the
    ``implementation`` of :func:`audiobench.input_pipeline.input_pipeline`) differs from the code that made a
    record. Library versions are not compared (they differ between machines; the cache keys hold them). None
    when the record has no ``input_pipeline`` block (records before December 2026)."""
    from audiobench.input_pipeline import input_pipeline

    block = record.get("input_pipeline") or {}
    if not block.get("implementation") or not block.get("sample_rate"):
        return None
    return input_pipeline(int(block["sample_rate"]))["implementation"] != block["implementation"]


def same_python(record: dict) -> bool:
    """Whether a record was made under this Python's major.minor version: code versions are digests of syntax
    trees, whose ``ast.dump`` changes between Python versions (3.12 added ``type_params``), so only then can they
    be compared."""
    made = str((record.get("provenance") or {}).get("python") or "").split(".")[:2]
    return made == [str(sys.version_info.major), str(sys.version_info.minor)]


def record_code_changes(record: dict) -> list[str] | None:
    """What of a result record's code differs from today's: ``"model"`` (see :func:`model_code_changed`),
    ``"input pipeline"`` (see :func:`input_pipeline_changed`) and ``"protocol"`` (its ``protocol.implementation``
    against :func:`protocol_version` now). None when none can be compared (the record names no code versions, or
    was made under another Python version, see :func:`same_python`)."""
    if not same_python(record):
        return None
    model, protocol = record.get("model") or {}, record.get("protocol") or {}
    changes, compared = [], False
    for name, changed in (("model", model_code_changed(model)), ("input pipeline", input_pipeline_changed(record))):
        if changed is not None:
            compared = True
            changes += [name] if changed else []
    if protocol.get("implementation"):
        compared = True
        changes += ["protocol"] if protocol["implementation"] != protocol_version(str(protocol.get("name"))) else []
    return changes if compared else None


def modules_of(objects: Iterable[object]) -> set[str]:
    """Modules defining the classes (and their base classes) of ``objects``."""
    modules: set[str] = set()
    for obj in objects:
        cls = obj if isinstance(obj, type) else type(obj)
        modules.update(base.__module__ for base in cls.__mro__ if base.__module__ in sys.modules)
    return modules
