"""Leaderboards: one ranked table per task from result records, beside the published numbers.

``build_leaderboards`` turns records and the published-numbers file into one :class:`TaskBoard` per
task (pandas tables); ``write_leaderboards`` writes ``<task>.md`` per task, a ``README.md`` index and
one self-contained ``index.html`` (see :mod:`audiobench.report.html_page`). Every number shown comes
from a record or from the published file.

Rules: only official records are ranked (by the task's primary metric in its direction, see
:data:`METRIC_DIRECTION`); non-official ones are listed apart, never ranked. Of several records of the
same task, model and protocol only the newest is shown; the others are named as superseded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from audiobench.code_version import record_code_changes
from audiobench.errors import AudiobenchError
from audiobench.report.records import RecordFile, load_records

#: Whether a larger value of a metric is better, by metric name; metrics not listed: higher is better.
METRIC_DIRECTION: dict[str, str] = {
    "accuracy": "higher",
    "mAP": "higher",
    "balanced_accuracy": "higher",
    "roc_auc": "higher",
    "f1": "higher",
    "psds1": "higher",
    "psds2": "higher",
    "error_rate": "lower",
    "eer": "lower",
    "loss": "lower",
}

#: Factor that turns a published value into a fraction, by its ``unit``.
UNIT_TO_FRACTION: dict[str, float] = {"fraction": 1.0, "percent": 0.01}

#: Published confidences in order of preference when several published numbers match a row.
CONFIDENCE_ORDER: tuple[str, ...] = ("exact_table", "exact_text", "leaderboard_csv", "checkpoint_name",
                                     "third_party", "figure")

#: Columns of a leaderboard table (one row per shown record).
COLUMNS: tuple[str, ...] = (
    "rank", "model", "family", "params_M", "macs_G", "macs_seconds", "latency_ms", "latency_note",
    "mean", "std", "std_ddof", "n_splits", "official", "protocol", "coverage",
    "published", "published_id", "published_source", "published_protocol", "published_others", "difference",
    "record_file", "commit", "dirty", "code_changed", "date", "command",
)


def metric_direction(metric: str) -> str:
    """``"higher"`` or ``"lower"``: which values of ``metric`` are better (higher when unknown)."""
    return METRIC_DIRECTION.get(metric, "higher")


@dataclass
class PublishedNumbers:
    """The curated published records (``leaderboards/published.yaml``), looked up by model, task and metric."""

    path: Path
    records: list[dict[str, Any]]
    excluded_confidence: frozenset[str] = frozenset()

    @classmethod
    def load(cls, path: Path) -> PublishedNumbers:
        """Read a published-numbers file."""
        path = Path(path)
        if not path.is_file():
            raise AudiobenchError(f"Published-numbers file {path} does not exist.",
                                  hint="Give --published the path of leaderboards/published.yaml.")
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise AudiobenchError(f"Published-numbers file {path} is not valid YAML: {error}",
                                  hint="Restore it from the repository (leaderboards/published.yaml).") from error
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise AudiobenchError(f"Published-numbers file {path} has no 'records' list.",
                                  hint="Give --published a file in the format of leaderboards/published.yaml.")
        return cls(path=path, records=data["records"],
                   excluded_confidence=frozenset(data.get("excluded_confidence") or ()))

    def aliases(self, model: str) -> set[str]:
        """Names ``model`` has in the published file: its own and those of the records its catalog card cites."""
        names = {model}
        cited = {number.record_id for number in _card_published(model)}
        names.update(r["model"] for r in self.records if r.get("id") in cited)
        return names

    def matching(self, model: str, task: str, metric: str) -> list[dict[str, Any]]:
        """Usable published records of ``model`` on ``task`` for ``metric``, preferred one first."""
        names = self.aliases(model)
        found = [r for r in self.records
                 if r.get("model") in names and r.get("task") == task and r.get("metric") == metric
                 and r.get("unit") in UNIT_TO_FRACTION and r.get("confidence") not in self.excluded_confidence]
        rank = {name: i for i, name in enumerate(CONFIDENCE_ORDER)}
        return sorted(found, key=lambda r: rank.get(r.get("confidence"), len(rank)))


def _card_published(model: str) -> tuple[Any, ...]:
    from audiobench.registry import MODELS

    try:
        info = MODELS.entry(model).info
    except AudiobenchError:  # not in the catalog (e.g. a record of a plugin no longer installed)
        return ()
    return tuple(getattr(info, "published", None) or ())


def as_fraction(published: dict[str, Any]) -> float:
    """A published value on the records' scale (fractions)."""
    return float(published["value"]) * UNIT_TO_FRACTION[published["unit"]]


def _latency(complexity: dict[str, Any]) -> tuple[float | None, str]:
    latency = complexity.get("latency") or {}
    for key, label in (("network", "network"), ("frontend_plus_network", "front-end + network")):
        block = latency.get(key) or {}
        if block.get("median_ms") is not None:
            where = ", ".join(str(x) for x in (latency.get("device"), latency.get("cpu") or latency.get("gpu"))
                              if x)
            threads = latency.get("threads")
            note = f"{label} median, batch 1{', ' + where if where else ''}"
            return float(block["median_ms"]), note + (f", {threads} thread(s)" if threads else "")
    return None, ""


def record_row(entry: RecordFile, published: PublishedNumbers) -> dict[str, Any]:
    """The table row of one record (numbers as numbers; formatting is left to the writers)."""
    record = entry.record
    complexity = record.get("complexity") or {}
    score = entry.score()
    provenance = record.get("provenance") or {}
    git = provenance.get("git") or {}
    latency_ms, latency_note = _latency(complexity)
    matches = published.matching(entry.model, entry.task, entry.primary_metric)
    best = matches[0] if matches else None
    published_value = as_fraction(best) if best else None
    params = (complexity.get("params") or {}).get("total", (record.get("model") or {}).get("params"))
    macs = (complexity.get("macs") or {}).get("total")
    return {
        "rank": None,
        "model": entry.model,
        "family": (record.get("model") or {}).get("family"),
        "params_M": params / 1e6 if params is not None else None,
        "macs_G": macs / 1e9 if macs is not None else None,
        "macs_seconds": (complexity.get("input") or {}).get("seconds"),
        "latency_ms": latency_ms,
        "latency_note": latency_note,
        "mean": score["mean"],
        "std": score.get("std"),
        "std_ddof": score.get("std_ddof"),
        "n_splits": len(score.get("per_split") or {}),
        "official": entry.official,
        "protocol": (record.get("protocol") or {}).get("splits", ""),
        "coverage": (record.get("dataset") or {}).get("coverage", ""),
        "published": published_value,
        "published_id": best["id"] if best else None,
        "published_source": best.get("source") if best else None,
        "published_protocol": best.get("protocol") if best else None,
        "published_others": [(r["id"], as_fraction(r)) for r in matches[1:]],
        "difference": (score["mean"] - published_value
                       if published_value is not None and score["mean"] is not None else None),
        "record_file": entry.path.name,
        "commit": git.get("commit"),
        "dirty": git.get("dirty"),
        "code_changed": record_code_changes(record),  # since the record was made; None: cannot be told
        "date": provenance.get("date"),
        "command": provenance.get("command"),
    }


@dataclass
class TaskBoard:
    """The leaderboard of one task: ranked official rows, unranked non-official rows, figures."""

    task: str
    metric: str
    direction: str
    ranked: pd.DataFrame
    unranked: pd.DataFrame
    superseded: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """Every shown row, ranked ones first."""
        return self.ranked.to_dict("records") + self.unranked.to_dict("records")


def _newest_first(entries: list[RecordFile]) -> list[RecordFile]:
    return sorted(entries, key=lambda e: ((e.record.get("provenance") or {}).get("date") or "", e.path.name),
                  reverse=True)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(COLUMNS))


def rank_rows(frame: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Rows sorted best first with competition ranks (ties share a rank) by the ``mean`` column."""
    ascending = direction == "lower"
    frame = frame.sort_values(["mean", "model"], ascending=[ascending, True], kind="stable").reset_index(drop=True)
    frame["rank"] = frame["mean"].rank(method="min", ascending=ascending).astype(int)
    return frame


def task_board(task: str, entries: list[RecordFile], published: PublishedNumbers) -> TaskBoard:
    """The board of one task from its records (newest record per model and protocol)."""
    metric = entries[0].primary_metric
    shown: dict[tuple[str, bool, str], RecordFile] = {}
    superseded: list[str] = []
    for entry in _newest_first(entries):
        key = (entry.model, entry.official, (entry.record.get("protocol") or {}).get("splits", ""))
        if key in shown:
            superseded.append(entry.path.name)
        else:
            shown[key] = entry
    rows = [record_row(entry, published) for entry in shown.values()]
    direction = metric_direction(metric)
    ranked = rank_rows(_frame([r for r in rows if r["official"]]), direction)
    unranked = _frame([r for r in rows if not r["official"]])
    unranked = unranked.sort_values(["mean", "model"], ascending=[direction == "lower", True],
                                    kind="stable").reset_index(drop=True)
    return TaskBoard(task=task, metric=metric, direction=direction, ranked=ranked, unranked=unranked,
                     superseded=sorted(superseded))


def pareto_figures(directory: Path, tasks: list[str]) -> dict[str, list[Path]]:
    """``pareto_<task>_*.png|svg`` files in ``directory``, by task (the longest task name that prefixes a file)."""
    found: dict[str, list[Path]] = {task: [] for task in tasks}
    by_length = sorted(tasks, key=len, reverse=True)
    for path in sorted(Path(directory).glob("pareto_*")):
        if path.suffix.lower() not in (".png", ".svg") or not path.is_file():
            continue
        task = next((t for t in by_length if path.name.startswith(f"pareto_{t}_")), None)
        if task is not None:
            found[task].append(path)
    return found


def build_leaderboards(results: Path, published_file: Path, figures_dir: Path | None = None) -> list[TaskBoard]:
    """One board per task with records in ``results`` (sorted by task name)."""
    entries = load_records(results)
    if not entries:
        raise AudiobenchError(f"No result records (*.json) in {results}.",
                              hint="Run `audiobench run --task ... --model ...` first, or point --results elsewhere.")
    published = PublishedNumbers.load(published_file)
    by_task: dict[str, list[RecordFile]] = {}
    for entry in entries:
        by_task.setdefault(entry.task, []).append(entry)
    boards = [task_board(task, by_task[task], published) for task in sorted(by_task)]
    if figures_dir is not None:
        boards += figure_only_boards(figures_dir, set(by_task))
        boards.sort(key=lambda board: board.task)
        figures = pareto_figures(figures_dir, [b.task for b in boards])
        for board in boards:
            board.figures = figures[board.task]
    return boards


def figure_only_boards(directory: Path, tasks_with_records: set[str]) -> list[TaskBoard]:
    """Empty boards for tasks that have Pareto figures (``pareto_<task>_<metric>_<x>.png``) but no records yet,
    e.g. AudioSet mAP of the published zoo against measured complexity."""
    found: dict[str, str] = {}
    for path in sorted(Path(directory).glob("pareto_*.png")):
        parts = path.stem[len("pareto_"):].rsplit("_", 2)
        if len(parts) == 3 and parts[0] not in tasks_with_records:
            found.setdefault(parts[0], parts[1])
    return [TaskBoard(task=task, metric=metric, direction=metric_direction(metric), ranked=_frame([]),
                      unranked=_frame([])) for task, metric in sorted(found.items())]


def _write(path: Path, text: str) -> None:
    from audiobench.atomic import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))
    path.chmod(0o644)  # committed files: readable by all, like any checked-out file


def write_leaderboards(results: Path, published: Path, out: Path) -> dict[str, Any]:
    """Write ``<task>.md``, ``README.md`` and ``index.html`` into ``out``; returns what was written."""
    from audiobench.report.html_page import leaderboard_html
    from audiobench.report.leaderboard_markdown import index_markdown, task_markdown

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    boards = build_leaderboards(results, published, figures_dir=out)
    written = []
    for board in boards:
        path = out / f"{board.task}.md"
        _write(path, task_markdown(board))
        written.append(path)
    for path, text in ((out / "README.md", index_markdown(boards, results, Path(published))),
                       (out / "index.html", leaderboard_html(boards))):
        _write(path, text)
        written.append(path)
    return {"files": [str(p) for p in written],
            "tasks": {b.task: {"ranked": len(b.ranked), "unranked": len(b.unranked), "figures": len(b.figures)}
                      for b in boards}}
