"""The ``sweep`` command: a grid of (task, model) runs, in this process or on Ray, then the leaderboard.

Registered on :data:`audiobench.cli.app` when :mod:`audiobench.cli` is imported.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from audiobench.cli import JsonOption, RichReporter, _checked_precision, _parse_options, _print_json, app, err, out, reports_errors
from audiobench.errors import AudiobenchError

STATUS_STYLE = {"done": "green", "skipped": "dim", "failed": "bold red"}


def _names(values: list[str]) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _pairs(items: list[str], option: str, example: str) -> dict[str, Path]:
    """``NAME=PATH`` strings as a dict (a name given twice is an error)."""
    pairs: dict[str, Path] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise AudiobenchError(f"{option} needs NAME=PATH, got {item!r}.", hint=f"E.g. {option} {example}")
        if name in pairs:
            raise AudiobenchError(f"{option} gives {name!r} twice.", hint=f"Give one {option} per name.")
        pairs[name] = Path(value.strip()).expanduser()
    return pairs


def _executor(use_ray: bool, address: Optional[str], device: str, cpus: float, gpus: Optional[float],
              retries: int, as_json: bool) -> Any:
    from audiobench.sweep import InProcessExecutor, RayExecutor, import_ray

    if address is not None and not use_ray:
        raise AudiobenchError(f"Unexpected argument {address!r}: a Ray address goes right after --ray.",
                              hint=f"Write --ray {address}.")
    if not use_ray:
        return InProcessExecutor()
    import_ray()  # no Ray: say so now, before any work
    gpus = gpus if gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
    return RayExecutor(address=address, cpus_per_task=cpus, gpus_per_task=gpus, max_retries=retries)


@app.command()
@reports_errors
def sweep(
    tasks: list[str] = typer.Option(..., "--tasks", help="Tasks, comma-separated (repeatable)."),
    models: list[str] = typer.Option(..., "--models", help="Models, comma-separated (repeatable)."),
    use_ray: bool = typer.Option(False, "--ray", help="Run each configuration as a Ray task: on a local Ray cluster, "
                                 "or on the cluster at ADDRESS when one follows (--ray ray://HEAD:10001, --ray auto)."),
    address: Optional[str] = typer.Argument(None, hidden=True, metavar="RAY_ADDRESS",
                                            help="Ray address (written after --ray)."),
    output_dir: Path = typer.Option(Path("results"), "--output-dir", "-o", help="Where the result records go."),
    data_dir_for: list[str] = typer.Option(None, "--data-dir-for", help="TASK=DIR: a task's dataset folder "
                                           "(repeatable; default: the cache)."),
    checkpoint_for: list[str] = typer.Option(None, "--checkpoint-for", help="MODEL=PATH: a model's weights file "
                                             "(repeatable; default: cache/download)."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="Protocol for every task (default: each card's)."),
    cv: Optional[int] = typer.Option(None, "--cv", help="Stratified K-fold CV over present clips (NON-official)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the CV shuffling and the probe."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (with --ray, cuda reserves a GPU per task)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Clips per forward pass."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 | fp16 autocast, as for `run`."),
    workers: Optional[int] = typer.Option(None, "--workers", min=0, help="Audio decoding workers (default: as for "
                                          "`run`; with --ray: CPUs per task - 1)."),
    dataset_option: list[str] = typer.Option(None, "--dataset-option", help="KEY=VALUE for every task's dataset "
                                             "loader (repeatable)."),
    cpus_per_task: float = typer.Option(1.0, "--cpus-per-task", min=0.01, help="With --ray: CPUs reserved per task "
                                        "(torch uses as many threads)."),
    gpus_per_task: Optional[float] = typer.Option(None, "--gpus-per-task", min=0.0, help="With --ray: GPUs per task "
                                                  "(default: 1 with --device cuda, else 0)."),
    max_retries: int = typer.Option(3, "--max-retries", min=0, help="With --ray: retries of a task whose worker dies."),
    leaderboard_dir: Path = typer.Option(Path("leaderboards"), "--leaderboard-dir", help="Where the leaderboard "
                                         "is written at the end."),
    no_leaderboard: bool = typer.Option(False, "--no-leaderboard", help="Do not write the leaderboard."),
    as_json: bool = JsonOption,
) -> None:
    """Run every (task, model) pair, skipping those whose record exists; then write the leaderboard."""
    from audiobench.sweep import build_grid, run_config
    from audiobench.sweep import sweep as run_sweep

    executor = _executor(use_ray, address, device, cpus_per_task, gpus_per_task, max_retries, as_json)
    if use_ray and workers is None:
        workers = max(0, int(cpus_per_task) - 1)
    configs = build_grid(_names(tasks), _names(models),
                         data_dirs=_pairs(data_dir_for or [], "--data-dir-for", "esc50=path/to/ESC-50"),
                         checkpoints=_pairs(checkpoint_for or [], "--checkpoint-for", "mn04=mn04_as_mAP_432.pt"),
                         cv=cv, seed=seed, device=device, batch_size=batch_size, num_workers=workers,
                         precision=_checked_precision(precision),
                         output_dir=output_dir, protocol=protocol, dataset_options=_parse_options(dataset_option or []))
    finished: list[Any] = []

    def report(outcome: Any) -> None:
        finished.append(outcome)
        err.print(f"{len(finished)}/{len(configs)} [{STATUS_STYLE[outcome.status]}]{outcome.status}[/] "
                  + escape(f"{outcome.config.task} / {outcome.config.model}: {outcome.reason}"), highlight=False,
                  soft_wrap=True)

    run_one = run_config if use_ray else functools.partial(run_config, reporter=RichReporter())
    outcomes = run_sweep(configs, executor, run_one, on_done=report)
    board = None
    if not no_leaderboard and output_dir.is_dir():
        from audiobench.report.leaderboard import write_leaderboards
        from audiobench.resources import published_numbers_file

        board = write_leaderboards(output_dir, published_numbers_file(), leaderboard_dir)
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUS_STYLE}
    if as_json:
        _print_json({"counts": counts, "outcomes": [o.to_dict() for o in outcomes], "leaderboard": board})
    else:
        _print_summary(outcomes, counts, board)
    if counts["failed"]:
        raise typer.Exit(1)


def _print_summary(outcomes: list[Any], counts: dict[str, int], board: Optional[dict[str, Any]]) -> None:
    table = Table(title=f"sweep: {len(outcomes)} configuration(s)")
    for column in ("task", "model", "status", "reason"):
        table.add_column(column, overflow="fold")
    for outcome in outcomes:
        table.add_row(*(Text(cell) for cell in (outcome.config.task, outcome.config.model, outcome.status,
                                                 outcome.reason)), style=STATUS_STYLE[outcome.status])
    out.print(table)
    out.print(", ".join(f"{count} {status}" for status, count in counts.items()), highlight=False)
    for outcome in outcomes:
        if outcome.status == "failed" and outcome.hint:
            out.print(Text.assemble((f"{outcome.config.task} / {outcome.config.model}:", "yellow"), f" {outcome.hint}"),
                      soft_wrap=True)
    if board is not None:
        out.print("leaderboard: wrote " + ", ".join(board["files"]), highlight=False)
