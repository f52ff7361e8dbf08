"""The ``predict`` and ``complexity`` commands: a model's own head on one file, and its measured complexity."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from audiobench.cli import JsonOption, _print_json, app, err, out, reports_errors


@app.command()
@reports_errors
def predict(
    file: Path = typer.Argument(..., help="Audio file."),
    model: str = typer.Option(..., "--model", "-m", help="Model with a pretrained head."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Weights file (default: cache/download)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many labels to show."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV of class names (index, ..., display_name)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    as_json: bool = JsonOption,
) -> None:
    """Top-k labels of the model's own pretrained head for one audio file."""
    from audiobench.predict import predict_file

    result = predict_file(file, model, checkpoint=checkpoint, top_k=top_k, labels=labels, device=device)
    if as_json:
        return _print_json(result)
    if result["warning"]:
        err.print(f"[yellow]{result['warning']}[/]", highlight=False)
    table = Table(title=f"{file.name}: {model} ({result['activation']})")
    for column in ("rank", "label", "score"):
        table.add_column(column)
    for rank, row in enumerate(result["top"], start=1):
        table.add_row(str(rank), row["label"], f"{row['score']:.3f}")
    out.print(table)


@app.command()
@reports_errors
def complexity(
    model: str = typer.Option(..., "--model", "-m", help="Model name (see `audiobench list models`)."),
    seconds: Optional[float] = typer.Option(None, "--seconds", min=0.01,
                                            help="Clip length (default: the model's segment length, else 10 s)."),
    no_latency: bool = typer.Option(False, "--no-latency", help="Skip the latency measurement."),
    threads: int = typer.Option(1, "--threads", min=1, help="CPU threads for the latency measurement."),
    runs: int = typer.Option(10, "--runs", min=1, help="Most timed latency runs (after warm-up)."),
    latency_budget: float = typer.Option(10.0, "--latency-budget", min=0.0,
                                         help="Seconds the latency measurement may take (at least 3 runs)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda: where latency is measured."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1,
                                         help="Override the network input's time frames (default: own front-end)."),
    as_json: bool = JsonOption,
) -> None:
    """Parameters, operator-level MACs, peak activation memory and latency of a model (batch 1)."""
    import torch

    from audiobench.complexity import measure_complexity
    from audiobench.device import resolve_device
    from audiobench.models.loading import load_model

    resolved = resolve_device(device)
    with err.status(f"{model}: building the model", spinner="dots") as status:
        if no_latency:  # counting needs no weights: build on the meta device (fast, no memory)
            with torch.device("meta"):
                audio_model = load_model(model)
        else:
            audio_model = load_model(model).to(resolved)
        record = measure_complexity(audio_model, seconds=seconds, latency_runs=runs, threads=threads,
                                    measure_latency=not no_latency, frames=frames, latency_budget_s=latency_budget,
                                    stage=lambda text: status.update(f"{model}: {text}"))
    if as_json:
        return _print_json(record)
    spec = record["input"]
    table = Table(title=f"{record['model']}: complexity for {spec['seconds']:g} s, input {spec['shape']} "
                        "(network only, front-end not counted)")
    for column in ("quantity", "measured", "published", "rel. diff"):
        table.add_column(column, justify="right" if column != "quantity" else "left")
    published = record["published"] or {}

    def rel(key: str) -> str:
        return f"{published[key]:+.2%}" if published.get(key) is not None else "-"

    table.add_row("params", f"{record['params']['total']:,} ({record['params']['M']:.3f} M)",
                  str(published.get("params_M", "-")), rel("params_rel_diff"))
    table.add_row("MACs", f"{record['macs']['total']:,} ({record['macs']['total'] / 1e9:.4f} G)",
                  str(published.get("macs_G", "-")), rel("macs_rel_diff"))
    memory = record["peak_activation_memory"]
    table.add_row("peak activations (fp32)", f"{memory['MiB']:.2f} MiB" if memory else "-", "", "")
    latency = record["latency"]
    for key, label in (("network", "latency network"), ("frontend_plus_network", "latency front-end+network")):
        if latency and latency.get(key):
            row = latency[key]
            value = f"{row['median_ms']:.2f} ms (p90 {row['p90_ms']:.2f}, RTF {row['real_time_factor']:.4f})"
            table.add_row(label, value, "", "")
    out.print(table)
    if published:
        out.print(f"published: {published['record_id']} ({published['source']})", highlight=False)
    budget = record.get("budget")
    if budget:
        out.print(f"DCASE23 budget: params {budget['params']:,} <= {budget['max_params']:,}: "
                  f"{budget['params_within']}; MACs/s {budget['macs_per_second']:,.0f} <= "
                  f"{budget['max_macs_per_second']:,}: {budget['macs_within']}")
    if latency:
        where = (f"{latency['gpu']} (CUDA)" if latency.get("gpu")
                 else f"{latency['cpu']}, {latency['threads']} thread(s)")
        out.print(f"latency: {where}, median of {latency['runs']} runs (at most {latency['requested_runs']}, "
                  f"budget {latency['budget_s']:g} s)", highlight=False)
    out.print(f"counter: {record['macs']['counter']} (torch {record['macs']['counter_version']})", highlight=False)
    for note in record["notes"]:
        out.print(f"note: {note}", highlight=False)
