"""Command-line interface: parses arguments, calls the library, prints tables or JSON.

Heavy modules (torch, models) are imported inside the commands that need them, so
``audiobench list`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import sys
import traceback
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from audiobench.errors import AudiobenchError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Benchmark efficient audio models on audio tasks with official protocols.")
# Not a terminal (pipes, CI logs): wide enough that tables keep whole names instead of "…".
out = Console(width=None if sys.stdout.isatty() else 220)
err = Console(stderr=True)

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def _print_version(value: bool) -> None:
    if value:
        from audiobench import __version__

        sys.stdout.write(f"audiobench {__version__}\n")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                          help="Print the audiobench version and exit.")) -> None:
    """Benchmark efficient audio models on audio tasks with official protocols."""


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")


def reports_errors(command: Callable[..., None]) -> Callable[..., None]:
    """Turn errors into one clear sentence plus a hint (JSON with --json), exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _print_warning
                command(*args, **kwargs)
        except AudiobenchError as error:
            if os.environ.get("AUDIOBENCH_DEBUG"):  # the hint may promise the traceback (e.g. of an import error)
                traceback.print_exception(error, file=sys.stderr)
            _fail(str(error), error.hint, kwargs.get("as_json", False))
        except typer.Exit:
            raise  # a command's own exit code (e.g. 1 = a check failed)
        except KeyboardInterrupt:
            _fail("Interrupted.", "Run the same command again: finished embeddings are cached and reused "
                  "(fine-tuning: add --resume to continue after the last finished epoch).",
                  kwargs.get("as_json", False), code=130)
        except Exception as error:  # noqa: BLE001 - last resort: no traceback for users unless asked
            if os.environ.get("AUDIOBENCH_DEBUG"):
                raise
            _fail(f"Unexpected {type(error).__name__}: {error}",
                  "Set AUDIOBENCH_DEBUG=1 to see the traceback, and please report it.", kwargs.get("as_json", False))

    return wrapper


def _print_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Warnings as one line on stderr (no source line): ``Warning: <message>``."""
    err.print(f"[yellow]Warning:[/] {message}", highlight=False, soft_wrap=True)


def _fail(message: str, hint: str | None, as_json: bool, code: int = 2) -> None:
    if as_json:
        _print_json({"error": message, "hint": hint})
    from rich.markup import escape  # messages may hold brackets, e.g. efficient-audiobench[ray]

    err.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if hint:
        err.print(f"[yellow]What to do:[/] {escape(hint)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


class ListKind(str, Enum):
    models = "models"
    tasks = "tasks"


def _model_rows() -> list[dict[str, Any]]:
    from audiobench.registry import MODELS

    rows = []
    for entry in MODELS:
        card = entry.info
        row: dict[str, Any] = {"name": entry.name, "source": entry.source}
        if card is not None:
            row.update(card.to_dict())
        rows.append(row)
    return rows


def _published_summary(row: dict[str, Any]) -> tuple[str, str, str]:
    for number in row.get("published") or []:
        if number["metric"] == "mAP" and number["task"] == "audioset":
            return tuple("-" if v is None else str(v) for v in (number["params_M"], number["macs_G"])) + (
                f"{number['value']:.3f}",)
    return ("-", "-", "-")


@app.command("list")
@reports_errors
def list_command(kind: ListKind = typer.Argument(..., help="What to list."), as_json: bool = JsonOption) -> None:
    """List registered models or tasks."""
    if kind is ListKind.models:
        rows = _model_rows()
        if as_json:
            return _print_json(rows)
        table = Table(title="models (published numbers from leaderboards/published.yaml)")
        for column in ("name", "family", "sample rate", "emb. dim", "params M", "MACs G", "AudioSet mAP", "checkpoint"):
            table.add_column(column)
        for row in rows:
            checkpoint = (row.get("checkpoint") or {}).get("file_name", "-")
            table.add_row(row["name"], row.get("family", "?"), str(row.get("sample_rate", "?")),
                          str(row.get("embedding_dim", "?")), *_published_summary(row), checkpoint)
        return out.print(table)
    from audiobench.tasks import load_task_cards

    cards = load_task_cards()
    if as_json:
        return _print_json([vars(c) for c in cards.values()])
    table = Table(title="tasks (cards in tasks/)")
    for column in ("name", "dataset", "labels", "metric", "protocol", "splits", "description"):
        table.add_column(column)
    for card in cards.values():
        table.add_row(card.name, card.dataset, card.label_type, card.metric, card.protocol,
                      _splits_text(card), card.description)
    out.print(table)


def _splits_text(card: Any) -> str:
    if card.splits["type"] == "folds":
        return f"folds {card.folds}"
    roles = [f"{role} {'+'.join(card.split_names(role))}" for role in ("train", "valid", "test") if card.split_names(role)]
    return "fixed: " + ", ".join(roles)


class RichReporter:
    """Progress bars and status lines on stderr (stdout stays clean for --json)."""

    def message(self, text: str) -> None:
        err.print(text, highlight=False)

    @contextlib.contextmanager
    def progress(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
        with Progress(*columns, console=err, transient=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)


def _parse_c(value: Optional[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if value == "auto":
        return {"C": "auto"}
    try:
        return {"C": float(value)}
    except ValueError as error:
        raise AudiobenchError(f"--probe-c must be a number or 'auto', got {value!r}.") from error


@app.command()
@reports_errors
def run(
    task: str = typer.Option(..., "--task", "-t", help="Task name (see `audiobench list tasks`)."),
    model: str = typer.Option(..., "--model", "-m", help="Model name (see `audiobench list models`)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Dataset folder (default: the cache)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights file (default: cache/download)."),
    cv: Optional[int] = typer.Option(None, "--cv", help="Stratified K-fold CV over present clips (NON-official)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CV shuffling and the probe."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto uses a GPU when there is one)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Clips per forward pass."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0,
                                          help="Audio decoding workers (default: planned from the thread budget)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1,
                                          help="Thread budget for decoding workers + compute (default: "
                                               "$AUDIOBENCH_THREADS, else the available cores)."),
    precision: str = typer.Option("fp32", "--precision",
                                  help="fp32 | bf16 | fp16: autocast of the model's forward (kept in the cache key "
                                       "and the record)."),
    memory_budget: float = typer.Option(4096.0, "--memory-budget", min=1.0,
                                        help="MB of model outputs held in memory; past it they stay on disk and "
                                             "the linear probe streams them."),
    output_dir: Path = typer.Option(Path("results"), "--output-dir", "-o", help="Where the result record goes."),
    download: bool = typer.Option(False, "--download", help="Download the dataset into the cache if missing."),
    probe_c: Optional[str] = typer.Option(None, "--probe-c", help="Probe regularisation C, or 'auto' (inner CV)."),
    protocol: Optional[str] = typer.Option(None, "--protocol",
                                           help="linear-probe | mlp-probe | pretrained-head | finetune (default: the task card's)."),
    dataset_option: list[str] = typer.Option(None, "--dataset-option",
                                             help="KEY=VALUE for the dataset loader, e.g. split=25 (repeatable)."),
    recipe: Optional[str] = typer.Option(None, "--recipe",
                                         help="--protocol finetune: training recipe (default: the published one "
                                              "for the model family and task; see docs/finetune.md)."),
    recipe_option: list[str] = typer.Option(None, "--recipe-option",
                                            help="KEY=VALUE overriding a recipe field, e.g. lr=1e-4 (repeatable)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="--protocol finetune: override the epochs."),
    resume: bool = typer.Option(False, "--resume",
                                help="--protocol finetune: continue from the last checkpoint of the same run."),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a model on a task and write a result record."""
    from audiobench.runner import run as run_task

    options = _run_options(task, model, data_dir, checkpoint, cv, seed, device, batch_size, workers, output_dir,
                           download, probe_c, protocol, dataset_option, threads, precision, memory_budget)
    options = dataclasses.replace(options, **_recipe_fields(recipe, recipe_option, epochs, resume))
    record, path = run_task(options, RichReporter())
    if as_json:
        return _print_json({**record, "record_path": str(path)})
    _print_run_summary(record, path)


def _run_options(task: str, model: str, data_dir: Optional[Path], checkpoint: Optional[Path], cv: Optional[int],
                 seed: int, device: str, batch_size: int, workers: Optional[int], output_dir: Path, download: bool,
                 probe_c: Optional[str], protocol: Optional[str] = None, dataset_option: Optional[list[str]] = None,
                 threads: Optional[int] = None, precision: str = "fp32", memory_budget: float = 4096.0,
                 **unused: Any) -> Any:
    return _with_recipe(unused, task=task, model=model, data_dir=data_dir, checkpoint=checkpoint, cv=cv, seed=seed,
                      device=device, batch_size=batch_size, num_workers=workers, output_dir=output_dir,
                      download=download, protocol=protocol, probe_options=_parse_c(probe_c),
                      dataset_options=_parse_options(dataset_option or []), threads=threads,
                      precision=_checked_precision(precision), memory_budget_mb=memory_budget)


def _recipe_fields(recipe: Optional[str], recipe_option: Optional[list[str]], epochs: Optional[int],
                   resume: bool) -> dict[str, Any]:
    """The fine-tuning fields of RunOptions from --recipe, --recipe-option, --epochs and --resume."""
    from audiobench.finetune.recipes import parse_recipe_options

    return {"recipe": recipe, "recipe_options": parse_recipe_options(recipe_option or []), "epochs": epochs,
            "resume": bool(resume)}


def _with_recipe(extra: dict[str, Any], **fields: Any) -> Any:
    """RunOptions of ``fields`` plus the fine-tuning options found in ``extra`` (parsed run arguments)."""
    from audiobench.runner import RunOptions

    return RunOptions(**fields, **_recipe_fields(extra.get("recipe"), extra.get("recipe_option"),
                                                 extra.get("epochs"), bool(extra.get("resume", False))))


def _checked_precision(precision: str) -> str:
    from audiobench.output_cache import precision_key

    precision_key(precision)  # an unknown name is a clear error
    return precision


def _parse_options(items: list[str]) -> dict[str, Any]:
    """``--dataset-option KEY=VALUE`` strings as a dict (values read as YAML: ``25`` -> 25, ``true`` -> True)."""
    from audiobench.key_values import parse_key_values

    return parse_key_values(items, "--dataset-option", "split=25")


def parse_run_command(arguments: list[str]) -> Any:
    """The :class:`~audiobench.runner.RunOptions` an ``audiobench run ...`` argument list stands for."""
    import click

    command = typer.main.get_command(app)
    run_command = command.get_command(click.Context(command), "run")  # type: ignore[attr-defined]
    try:
        context = run_command.make_context("run", list(arguments))
    except click.ClickException as error:
        raise AudiobenchError(f"Cannot parse the run command {' '.join(arguments)!r}: {error.format_message()}") from None
    return _run_options(**context.params)


def _print_run_summary(record: dict[str, Any], path: Path) -> None:
    metric_name, metric = next(iter(record["metrics"].items()))
    official = record["protocol"]["official"]
    table = Table(title=f"{record['task']['name']} / {record['model']['name']}: {metric_name}")
    table.add_column("split")
    table.add_column(metric_name, justify="right")
    for name, value in metric["per_split"].items():
        table.add_row(name, f"{value:.4f}")
    table.add_row("[bold]mean ± std[/]", f"[bold]{metric['mean']:.4f} ± {metric['std']:.4f}[/]")
    out.print(table)
    splits = record["protocol"]["splits"]
    out.print(f"official protocol: {splits}" if official else f"[bold yellow]{splits}[/]")
    out.print(f"record: {path}")


def main() -> None:
    """Entry point for ``python -m audiobench``."""
    app()


from audiobench import cli_report  # noqa: E402,F401 - registers the report commands on `app`
from audiobench import cli_sweep  # noqa: E402,F401 - registers the sweep command on `app`
from audiobench import cli_model  # noqa: E402,F401 - registers the predict and complexity commands on `app`
from audiobench import cli_cache  # noqa: E402,F401 - registers the cache commands on `app`
