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
    published: Path | None = typer.Option(None, "--published", help="Published numbers (default: leaderboards/published.yaml)."),
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
    published: Path | None = typer.Option(None, "--published",
                                   help="Published-numbers file (default: leaderboards/published.yaml)."),
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


@app.command()
@reports_errors
def pareto(
    task: str = typer.Option(..., "--task", "-t", help="Task name (a task card, or a task of the published numbers)."),
    x: str = typer.Option("macs", "--x", help="Complexity on the x axis: macs | params | latency (all measured)."),
    out_dir: Path = typer.Option(Path("leaderboards"), "--out", "-o", help="Folder for the .png, .svg and .csv."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder of result records (reproduced points)."),
    published: Path | None = typer.Option(None, "--published",
                                   help="Published numbers YAML (default: leaderboards/published.yaml)."),
    metric: str | None = typer.Option(None, "--metric", help="Metric (default: the task card's; needed without a card)."),
    include_nonofficial: bool = typer.Option(False, "--include-nonofficial",
                                             help="Also plot non-official records (marked; never on the front)."),
    as_json: bool = JsonOption,
) -> None:
    """Score against measured complexity: reproduced (filled) and published (hollow) points, Pareto front."""
    import warnings

    from audiobench.report.pareto import points_on_front, write_pareto
    from audiobench.report.points import gather_points
    from audiobench.resources import published_numbers_file

    found = gather_points(task, x, results, published or published_numbers_file(), metric, include_nonofficial)
    paths = write_pareto(found, out_dir)
    left_out = found.excluded
    summary = {"task": found.task, "metric": found.metric, "x": found.axis.name, "plotted": len(found.plotted),
               "front": [p.model for p in points_on_front(found)], "files": {k: str(v) for k, v in paths.items()},
               "not_plotted": [{"model": p.model, "kind": p.kind, "record_id": p.record_id, "reason": p.reason}
                               for p in left_out]}
    if as_json:
        return _print_json(summary)
    unmeasured = [p for p in left_out if "no measured" in p.reason]
    if unmeasured:
        names = sorted({p.model for p in unmeasured})
        shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        warnings.warn(f"{len(unmeasured)} score(s) not plotted, no measured {found.axis.quantity}: {shown} "
                      f"(all listed with the reason in {paths['csv']})", stacklevel=1)
    out.print(f"{found.task} {found.metric} vs {found.axis.quantity}: {len(found.plotted)} point(s) plotted, "
              f"{len(left_out)} not plotted (reasons in the CSV); Pareto front: {', '.join(summary['front']) or 'none'}",
              highlight=False)
    out.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)


def _format_p(value: float) -> str:
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.2e}"


@app.command()
@reports_errors
def compare(
    record_a: Path = typer.Argument(..., help="Record A (.json), the reference."),
    record_b: Path = typer.Argument(..., help="Record B (.json); the difference is B - A."),
    resamples: int = typer.Option(10_000, "--resamples", min=1, help="Bootstrap resamples for the 95 % CI."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    as_json: bool = JsonOption,
) -> None:
    """Paired comparison of two records on the same clips: B - A, bootstrap 95 % CI, paired test."""
    from audiobench.report.compare import compare as compare_records

    result = compare_records(record_a, record_b, resamples, seed)
    if as_json:
        return _print_json(result)
    kind = "official" if result["official"] else "NON-OFFICIAL"
    metric = result["metric"]
    table = Table(title=f"{result['task']} {metric}, {result['clips']} clips in {len(result['splits'])} split(s) "
                        f"({kind})")
    for column in ("", "model", "record", f"{metric} (recorded)", f"{metric} (recomputed)"):
        table.add_column(column, justify="right" if metric in column else "left")
    for key in ("a", "b"):
        side = result[key]
        table.add_row(key.upper(), side["model"], Path(side["record"]).name, f"{side['recorded']:.4f}",
                      f"{side['recomputed']:.4f}")
    out.print(table)
    low, high = result["ci95"]
    out.print(f"B - A = {result['difference']:+.4f}, 95 % CI [{low:+.4f}, {high:+.4f}] (percentile bootstrap, "
              f"{result['resamples']} resamples within splits, seed {result['seed']})", highlight=False)
    discordant = result["discordant"]
    counts = (f": A only correct {discordant['a_only_correct']}, B only correct {discordant['b_only_correct']}"
              if discordant else "")
    out.print(f"{result['test_name']}{counts}; p = {_format_p(result['p_value'])}", highlight=False)
    if not result["official"]:
        out.print(f"[yellow]{result['protocol']}[/]", highlight=False)


@app.command()
@reports_errors
def classes(
    record: Path = typer.Argument(..., help="A result record (.json) with a predictions file."),
    out_dir: Path | None = typer.Option(None, "--out", "-o", help="Folder for the CSV and confusion-matrix "
                                        "PNG/SVG (default: beside the record)."),
    as_json: bool = JsonOption,
) -> None:
    """Per-class table (CSV) and, for single-label tasks, the confusion matrix (PNG + SVG) of a record."""
    from audiobench.report.per_class import class_report

    result = class_report(record, out_dir)
    if as_json:
        return _print_json(result)
    table = Table(title=f"{result['task']} / {result['model']}: per class, {result['clips']} clips "
                        f"over {len(result['splits'])} split(s)")
    for column in result["columns"]:
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result["rows"]:
        table.add_row(*(_cell(row[column]) for column in result["columns"]))
    out.print(table)
    out.print("wrote " + ", ".join(result["files"].values()), highlight=False)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


@app.command("score-sed")
@reports_errors
def score_sed(
    ground_truth: Path = typer.Option(..., "--ground-truth", help="Strong labels: filename onset offset event_label."),
    durations: Path = typer.Option(..., "--durations", help="Clip durations: filename duration."),
    detections: Path | None = typer.Option(None, "--detections", help="Folder of predictions_th_<threshold>.tsv "
                                           "(psds_eval + sed_eval)."),
    scores: Path | None = typer.Option(None, "--scores", help="Folder of per-clip score tables <clip>.tsv "
                                       "(sed_scores_eval)."),
    f1_detections: Path | None = typer.Option(None, "--f1-detections", help="Detections at threshold 0.5 for the "
                                              "F1 figures (default: predictions_th_0.50.tsv in --detections)."),
    jobs: int = typer.Option(0, "--jobs", min=0, help="Worker processes (0: the CPUs, at most 8)."),
    float_parsing: str = typer.Option("exact", "--float-parsing", help="exact (round-trip) or legacy (pandas < 1.3 "
                                      "parser, as the DESED reference outputs were made)."),
    as_json: bool = JsonOption,
) -> None:
    """DCASE task 4 sound event detection scores: PSDS1, PSDS2 and intersection/collar/segment F1."""
    from audiobench.metrics_sed import score_sed as run_score_sed

    result = run_score_sed(ground_truth, durations, detections=detections, scores=scores,
                           f1_detections=f1_detections, jobs=jobs or None, float_parsing=float_parsing)  # type: ignore[arg-type]
    if as_json:
        return _print_json(result)
    source = (f"{result['operating_points']} operating points" if result["mode"] == "detections"
              else "per-clip score tables")
    table = Table(title=f"score-sed: {result['clips']} clips, {len(result['classes'])} classes, {source}")
    for column in ("metric", "value", "implementation", "parameters"):
        table.add_column(column, justify="right" if column == "value" else "left", overflow="fold")
    for row in result["metrics"]:
        parameters = ", ".join(f"{k}={v}" for k, v in row["parameters"].items())
        table.add_row(row["name"], f"{row['value']:.4f}", f"{row['implementation']} {row['version']}", parameters)
    for row in result["missing"]:
        table.add_row(row["name"], "-", "", row["reason"], style="dim")
    out.print(table)
    out.print(f"float parsing {result['float_parsing']}; {result['jobs']} job(s); "
              f"{result['timings_s']['total_s']:.1f} s", highlight=False)
