"""Report commands of the CLI (``rescore``, and the comparisons, plots and checks built on records).

They read result records and published numbers and never run a model. Registered on
:data:`audiobench.cli.app` when :mod:`audiobench.cli` is imported.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from audiobench.cli import JsonOption, _print_json, app, out, reports_errors


@app.command()
@reports_errors
def rescore(
    record: Path = typer.Argument(..., help="A result record (.json) written by `audiobench run`."),
    as_json: bool = JsonOption,
) -> None:
    """Recompute every metric of a record from its predictions file (exit 1 if any differs)."""
    from audiobench.report.rescore import rescore as rescore_record

    result = rescore_record(record)
    if as_json:
        _print_json(result)
    else:
        table = Table(title=f"{result['record']} ({result['clips']} clips, {result['predictions']})")
        for column in ("metric", "split", "recorded", "recomputed", "identical"):
            table.add_column(column, justify="left" if column in ("metric", "split") else "right")
        for row in result["rows"]:
            table.add_row(row["metric"], row["split"], repr(row["recorded"]), repr(row["recomputed"]),
                          "yes" if row["equal"] else "[bold red]NO[/]")
        out.print(table)
        out.print("identical: every metric recomputed exactly" if result["identical"]
                  else "[bold red]the predictions file does not give the record's numbers[/]")
    if not result["identical"]:
        raise typer.Exit(1)
