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


@app.command()
@reports_errors
def check(
    results: Path = typer.Option(Path("results"), "--results", help="Directory of result records."),
    published: Path = typer.Option(None, "--published", help="Published numbers (default: leaderboards/published.yaml)."),
    spec: Path = typer.Option(None, "--spec", help="Tolerances and pairings (default: leaderboards/regression.yaml)."),
    section: list[str] = typer.Option(None, "--section", help="Only these sections: complexity, records, reproduce."),
    model: list[str] = typer.Option(None, "--model", "-m", help="Only these catalog models (complexity section)."),
    as_json: bool = JsonOption,
) -> None:
    """Regression gate: complexity, records and reproductions against published and recorded numbers (exit 1 on regression)."""
    from audiobench.errors import AudiobenchError
    from audiobench.report.check import SECTIONS, failed, run_checks
    from audiobench.resources import data_dir, published_numbers_file

    unknown = sorted(set(section or []) - set(SECTIONS))
    if unknown:
        raise AudiobenchError(f"Unknown --section {', '.join(unknown)}.", hint=f"Use one of {', '.join(SECTIONS)}.")
    rows = run_checks(results, published or published_numbers_file(), spec or data_dir("leaderboards") / "regression.yaml",
                      sections=section or SECTIONS, models=model or None)
    bad = failed(rows)
    if as_json:
        _print_json({"ok": not bad, "failed": len(bad), "rows": [row.to_dict() for row in rows]})
    else:
        table = Table(title="audiobench check")
        for column in ("section", "subject", "quantity", "measured", "expected", "tolerance", "status", "note"):
            table.add_column(column, overflow="fold")
        for row in rows:
            style = "bold red" if row in bad else ("dim" if row.status == "skip" else "")
            table.add_row(row.section, row.subject, row.quantity, str(row.measured), str(row.expected), row.tolerance,
                          row.status, row.note, style=style)
        out.print(table)
        counts = {status: sum(r.status == status for r in rows) for status in ("pass", "FAIL", "skip")}
        out.print(f"{counts['pass']} passed, {counts['FAIL']} failed, {counts['skip']} skipped")
    if bad:
        raise typer.Exit(1)


@app.command()
@reports_errors
def leaderboard(
    results: Path = typer.Option(Path("results"), "--results", help="Folder of result records (*.json)."),
    published: Path = typer.Option(None, "--published",
                                   help="Published-numbers file [default: leaderboards/published.yaml]."),
    out_dir: Path = typer.Option(Path("leaderboards"), "--out", help="Where the Markdown and index.html go."),
    as_json: bool = JsonOption,
) -> None:
    """Write the leaderboards: <task>.md per task, README.md index and one self-contained index.html."""
    from audiobench.report.leaderboard import write_leaderboards
    from audiobench.resources import published_numbers_file

    summary = write_leaderboards(results, published or published_numbers_file(), out_dir)
    if as_json:
        _print_json(summary)
        return
    for task, counts in summary["tasks"].items():
        out.print(f"{task}: {counts['ranked']} ranked, {counts['unranked']} non-official, "
                  f"{counts['figures']} figure(s)")
    out.print("wrote " + ", ".join(summary["files"]))
