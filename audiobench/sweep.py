"""``sweep``: a grid of (task, model) runs, one after the other in this process or as Ray tasks.

A configuration whose record already lies in the output directory is skipped (:func:`find_existing`),
so a sweep that was stopped, or that lost a worker, is resumed by running the same command again. A
configuration that fails (missing data, an unknown name) is reported and does not stop the others.

Executors share one small interface, ``execute(configs, run_one, on_done=None) -> outcomes``, where
``run_one(config) -> record path`` runs one configuration: :class:`InProcessExecutor` and
:class:`RayExecutor` (which pickles ``run_one`` with cloudpickle and runs it in Ray workers).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from audiobench.code_version import input_pipeline_changed, model_code_changed
from audiobench.errors import AudiobenchError
from audiobench.runner import Reporter, RunOptions

RunOne = Callable[[RunOptions], Path]
OnDone = Callable[["Outcome"], None]
RAY_INSTALL = "pip install 'efficient-audiobench[ray]'"
# torch and BLAS read these when imported; AUDIOBENCH_THREADS is audiobench's own thread budget
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "AUDIOBENCH_THREADS")


@dataclass(frozen=True)
class Outcome:
    """What became of one configuration: ``done``, ``skipped`` (its record exists) or ``failed``."""

    config: RunOptions
    status: str
    reason: str  # one line
    record: Path | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.config.task, "model": self.config.model, "status": self.status, "reason": self.reason,
                "hint": self.hint, "record": str(self.record) if self.record else None}


def build_grid(tasks: Iterable[str], models: Iterable[str], data_dirs: Mapping[str, Path] | None = None,
               checkpoints: Mapping[str, Path] | None = None, **options: Any) -> list[RunOptions]:
    """One :class:`RunOptions` per (task, model), task by task; ``options`` are the other RunOptions fields.

    ``data_dirs`` maps a task to its dataset folder, ``checkpoints`` a model to its weights file; a key that
    is not in the grid is an error (a misspelt name would otherwise be ignored silently).
    """
    tasks, models = list(dict.fromkeys(tasks)), list(dict.fromkeys(models))
    data_dirs, checkpoints = dict(data_dirs or {}), dict(checkpoints or {})
    for what, names, given, option in (("task", tasks, data_dirs, "--data-dir-for"),
                                       ("model", models, checkpoints, "--checkpoint-for")):
        if not names:
            raise AudiobenchError(f"The sweep has no {what}.", hint=f"Give at least one with --{what}s A,B.")
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise AudiobenchError(f"{option} names {', '.join(unknown)}, which is not a {what} of the sweep "
                                  f"({', '.join(names)}).", hint=f"Use {option} with a {what} given in --{what}s.")
    return [RunOptions(task=task, model=model, data_dir=data_dirs.get(task), checkpoint=checkpoints.get(model),
                       **{**options, "dataset_options": dict(options.get("dataset_options") or {}),
                          "probe_options": dict(options.get("probe_options") or {})})
            for task in tasks for model in models]


# -- which record belongs to a configuration ---------------------------------------------------------------

_CROSS_VALIDATION = re.compile(r"(\d+)-fold cross-validation \(seed (-?\d+)\)")


@dataclass(frozen=True)
class Weights:
    """The weights a record must name: by sha256 when known, else by file name; neither: no weights."""

    sha256: str | None
    file: str | None

    def named_by(self, model: Mapping[str, Any]) -> bool:
        if self.sha256 is not None:
            return model.get("checkpoint_sha256") == self.sha256
        if self.file is not None:
            return model.get("checkpoint_file") == self.file
        return model.get("checkpoint_sha256") is None and model.get("checkpoint_file") is None


@dataclass(frozen=True)
class RecordKey:
    """The fields of a result record that identify the configuration which wrote it."""

    task: str
    model: str
    protocol: str
    seed: int
    cv: int | None
    settings: dict[str, Any]  # protocol settings, compared where the record's protocol block shows them
    dataset_options: dict[str, Any]
    weights: Weights | None  # None: cannot be known beforehand, so no record matches
    precision: str = "fp32"  # compared where the record's embeddings block shows it
    implementation: str | None = None  # the protocol's code version (None: not compared)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` was written by a configuration with this key."""
        try:
            protocol, model = record["protocol"], record["model"]
            cross_validation = _CROSS_VALIDATION.search(str(protocol.get("splits", "")))
            same_splits = (cross_validation is None if self.cv is None else cross_validation is not None
                           and (int(cross_validation[1]), int(cross_validation[2])) == (self.cv, self.seed))
            return (self.weights is not None and record["task"].get("name") == self.task
                    and model.get("name") == self.model and protocol.get("name") == self.protocol
                    and record["provenance"].get("seed") == self.seed and same_splits
                    and all(_plain(protocol[k]) == v for k, v in self.settings.items() if k in protocol)
                    and _plain(record.get("dataset", {}).get("options") or {}) == self.dataset_options
                    and record.get("embeddings", {}).get("precision", "fp32") == self.precision  # absent: fp32
                    and (self.implementation is None or protocol.get("implementation") == self.implementation)
                    and model_code_changed(model) is not True and input_pipeline_changed(record) is not True
                    and self.weights.named_by(model))
        except (KeyError, AttributeError, TypeError):  # not a record of this schema: not a match
            return False


def _plain(value: Any) -> Any:
    """``value`` as it reads back from a JSON record (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


@functools.lru_cache(maxsize=None)
def _released_weights(model: str) -> Weights:
    """The weights ``model`` loads without a checkpoint (an unknown model raises, and is not remembered)."""
    from audiobench.registry import MODELS

    release = getattr(MODELS.entry(model).info, "checkpoint", None)
    return Weights(release.sha256, release.file_name) if release is not None else Weights(None, None)


def _expected_weights(config: RunOptions) -> Weights | None:
    from audiobench.cachedir import cache_subdir
    from audiobench.download import sha256_of

    released = _released_weights(config.model)  # also fails on an unknown model
    if config.checkpoint is None:
        return released
    path = Path(config.checkpoint).expanduser()
    if not path.exists() and path.name == str(path):  # a bare file name is looked up in the checkpoint cache
        path = cache_subdir("checkpoints") / path.name
    # a directory's hash depends on how its model reads it: such a configuration is always run again
    return Weights(sha256_of(path), path.name) if path.is_file() else None


def record_key(config: RunOptions) -> RecordKey:
    """What a record written by ``config`` shows (AudiobenchError for an unknown task or model)."""
    from audiobench.code_version import protocol_version
    from audiobench.tasks import get_task

    card = get_task(config.task)
    protocol = config.protocol or card.protocol
    settings = {**(card.protocol_options if protocol == card.protocol else {}), **config.probe_options,
                "seed": config.seed}
    return RecordKey(task=card.name, model=config.model, protocol=protocol, seed=config.seed, cv=config.cv,
                     settings=_plain(settings), dataset_options=_plain({**card.dataset_options,
                                                                        **config.dataset_options}),
                     weights=_expected_weights(config), precision=getattr(config, "precision", "fp32"),
                     implementation=protocol_version(protocol))


def find_existing(config: RunOptions, output_dir: Path | None = None) -> Path | None:
    """The newest record in ``output_dir`` (default ``config.output_dir``) written by ``config``, else None.

    A record matches when it shows the same task, model, protocol name, seed (provenance), kind of splits
    (the task's own splits, or K-fold cross-validation with the same K and seed, read from the protocol's
    splits description), protocol settings (the card's ``protocol_options`` and the probe options, where the
    record's protocol block shows them), dataset options and weights (sha256 of the checkpoint file, or the
    release's sha256 or file name; no weights for a model without any), precision (where the embeddings
    block shows it), the derived version of the protocol's code (a record made by other probe code, e.g. another
    solver, is not this configuration's), the model's code (where the record names its ``code_roots``, today's
    version of that code must be the record's, see :func:`audiobench.code_version.model_code_changed`), the
    input pipeline's code (where the record has an ``input_pipeline`` block) and its predictions file is present.
    The data location, device, batch size and workers are not compared: they do not change what is measured.
    """
    from audiobench.results import read_record

    key = record_key(config)  # first: an unknown task or model fails here, with or without records
    directory = Path(output_dir if output_dir is not None else config.output_dir)
    if not directory.is_dir():
        return None
    found: list[tuple[str, str, Path]] = []
    for path in directory.glob("*.json"):
        try:
            record = read_record(path)
        except AudiobenchError:  # not a record audiobench reads: it belongs to no configuration
            continue
        predictions = record.get("predictions") or {}
        if key.matches(record) and (not predictions or (directory / str(predictions.get("file"))).is_file()):
            found.append((str(record["provenance"].get("date")), path.name, path))
    return max(found)[2] if found else None


# -- running configurations ------------------------------------------------------------------------------

def run_config(config: RunOptions, reporter: Reporter | None = None) -> Path:
    """``run_one`` of ``audiobench sweep``: run one configuration, return its record's path."""
    from audiobench.runner import run

    return run(config, reporter)[1]


def _failed(config: RunOptions, error: BaseException) -> Outcome:
    if isinstance(error, AudiobenchError):
        return Outcome(config, "failed", _one_line(str(error)), hint=error.hint)
    if os.environ.get("AUDIOBENCH_DEBUG"):
        traceback.print_exception(error, file=sys.stderr)
    return Outcome(config, "failed", _one_line(f"Unexpected {type(error).__name__}: {error}"),
                   hint="Set AUDIOBENCH_DEBUG=1 to see the traceback, and please report it.")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_guarded(config: RunOptions, run_one: RunOne) -> Outcome:
    """Run ``config`` unless its record exists (written by an earlier attempt or another sweep); an error
    becomes a ``failed`` outcome instead of stopping the sweep."""
    try:
        existing = find_existing(config)
        if existing is not None:
            return Outcome(config, "skipped", f"record {existing.name} exists", existing)
        path = Path(run_one(config))
        return Outcome(config, "done", f"wrote {path.name}", path)
    except Exception as error:  # noqa: BLE001 - one configuration's failure must not stop the sweep
        return _failed(config, error)


class Executor(Protocol):
    """Runs configurations with ``run_one`` and returns their outcomes in the order given."""

    def execute(self, configs: Sequence[RunOptions], run_one: RunOne,
                on_done: OnDone | None = None) -> list[Outcome]: ...


class InProcessExecutor:
    """One configuration after the other, in this process."""

    def execute(self, configs: Sequence[RunOptions], run_one: RunOne,
                on_done: OnDone | None = None) -> list[Outcome]:
        outcomes = []
        for config in configs:
            outcomes.append(run_guarded(config, run_one))
            if on_done is not None:
                on_done(outcomes[-1])
        return outcomes


def import_ray() -> Any:
    """The ``ray`` module, or an AudiobenchError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise AudiobenchError(f"--ray needs Ray, which is not installed: {RAY_INSTALL}",
                              hint=f"Install it with {RAY_INSTALL}, or leave out --ray to run in this process.") from None
    return ray


def limit_threads(count: int) -> None:
    """Let this process's torch and BLAS use ``count`` threads (set before torch is imported, or now)."""
    for name in THREAD_VARIABLES:
        os.environ[name] = str(count)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(count)


def _in_worker(config: RunOptions, run_one: RunOne, threads: int) -> Outcome:
    """The body of a Ray task: as many threads as CPUs reserved, then :func:`run_guarded`."""
    limit_threads(threads)
    return run_guarded(config, run_one)


def _absolute(config: RunOptions) -> RunOptions:
    """``config`` with folder paths made absolute (workers need not share the driver's directory)."""
    checkpoint = config.checkpoint
    if checkpoint is not None and Path(checkpoint).expanduser().exists():  # a bare cache name stays as it is
        checkpoint = Path(checkpoint).expanduser().absolute()
    return dataclasses.replace(config, output_dir=Path(config.output_dir).expanduser().absolute(),
                               data_dir=Path(config.data_dir).expanduser().absolute() if config.data_dir else None,
                               checkpoint=checkpoint)


@dataclass
class RayExecutor:
    """Each configuration as one Ray task on a cluster: a local one (``address`` None) or the one at ``address``.

    A task reserves ``cpus_per_task`` CPUs (torch gets as many threads) and ``gpus_per_task`` GPUs. A task
    whose worker dies is retried up to ``max_retries`` times; errors raised by a run are not retried.
    When Ray is already initialised in this process, that connection is used and left open.
    """

    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    max_retries: int = 3

    def execute(self, configs: Sequence[RunOptions], run_one: RunOne,
                on_done: OnDone | None = None) -> list[Outcome]:
        if not configs:
            return []
        ray = import_ray()
        started = self._connect(ray)
        try:
            task = ray.remote(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                              max_retries=self.max_retries)(_in_worker)
            threads = max(1, int(self.cpus_per_task))
            waiting = {task.remote(_absolute(config), run_one, threads): index for index, config in enumerate(configs)}
            outcomes: dict[int, Outcome] = {}
            while waiting:
                ready, _ = ray.wait(list(waiting), num_returns=1)
                index = waiting.pop(ready[0])
                outcomes[index] = self._result(ray, ready[0], configs[index])
                if on_done is not None:
                    on_done(outcomes[index])
            return [outcomes[index] for index in range(len(configs))]
        finally:
            if started:
                ray.shutdown()

    def _connect(self, ray: Any) -> bool:
        """Initialise Ray unless it is; True when this call did (and so shuts it down at the end)."""
        if ray.is_initialized():
            return False
        local = {"include_dashboard": False} if self.address is None else {}
        try:
            ray.init(address=self.address, **local)
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise AudiobenchError(f"Cannot start or reach {where} ({_one_line(str(error))[:300]}).",
                                  hint="Check the address (e.g. ray://HEAD:10001, or auto on a cluster node) and "
                                       "that the cluster runs (`ray status`).") from None
        return True

    def _result(self, ray: Any, ref: Any, config: RunOptions) -> Outcome:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as error:  # the worker died beyond the retries, the node was lost, ...
            reason = _one_line(str(error)).split(". ")[0][:300]
            return Outcome(config, "failed", f"Ray: {type(error).__name__}: {reason}",
                           hint=f"Ray retries a task whose worker dies up to {self.max_retries} times; run the "
                                "sweep again to retry it.")


def sweep(configs: Sequence[RunOptions], executor: Executor, run_one: RunOne = run_config,
          on_done: OnDone | None = None) -> list[Outcome]:
    """Run every configuration without a record through ``executor``; outcomes in the order of ``configs``.

    Existing records are looked up here first, so a sweep whose records all exist starts no cluster.
    """
    outcomes: dict[int, Outcome] = {}
    pending: list[int] = []
    for index, config in enumerate(configs):
        try:
            existing = find_existing(config)
        except Exception as error:  # noqa: BLE001 - an unknown task or model fails this configuration only
            outcomes[index] = _failed(config, error)
        else:
            if existing is None:
                pending.append(index)
                continue
            outcomes[index] = Outcome(config, "skipped", f"record {existing.name} exists", existing)
        if on_done is not None:
            on_done(outcomes[index])
    ran = executor.execute([configs[index] for index in pending], run_one, on_done)
    outcomes.update(zip(pending, ran))
    return [outcomes[index] for index in range(len(configs))]
