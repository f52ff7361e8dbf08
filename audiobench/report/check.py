"""``audiobench check``: the regression gate CI runs (exit 0 when everything holds, 1 when something regressed).

Three sections, each a list of :class:`~audiobench.report.checks.CheckRow`:

1. ``complexity``: every catalog model's measured params and MACs against its published values;
2. ``records``: every result record rescored exactly from its predictions file, made by today's model, input
   pipeline and protocol code (a record made by other code fails: re-run it), and compared with a published
   number where the regression spec pairs it with one measured under the same protocol;
3. ``reproduce``: the records re-run from their commands with fresh embeddings, and reference
   predictions on real files recomputed.

What is compared and within which tolerance is data: ``leaderboards/regression.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from audiobench.report.check_complexity import check_complexity
from audiobench.report.check_records import check_records
from audiobench.report.check_reproduce import check_reproductions
from audiobench.report.checks import FAIL, CheckRow, read_yaml
from audiobench.report.records import load_records

SECTIONS = ("complexity", "records", "reproduce")


def catalog_cards(names: Iterable[str] | None = None) -> list[Any]:
    """Cards of the built-in catalog models (all, or those named)."""
    from audiobench.models.catalog import builtin_model_specs
    from audiobench.registry import MODELS

    if names is not None:
        return [MODELS.entry(name).info for name in names]
    return [spec.card for spec in builtin_model_specs()]


def run_checks(results: Path, published: Path, spec_path: Path, sections: Iterable[str] = SECTIONS,
               models: Iterable[str] | None = None) -> list[CheckRow]:
    """Every row of the requested sections."""
    spec = read_yaml(spec_path, "Regression spec")
    published_data = read_yaml(published, "Published-numbers file")
    sections = list(sections)
    records = load_records(results) if {"records", "reproduce"} & set(sections) else []
    rows: list[CheckRow] = []
    if "complexity" in sections:
        rows += check_complexity(catalog_cards(models), published_data, spec.get("complexity", {}))
    if "records" in sections:
        rows += check_records(records, published_data, spec.get("results", {}))
    if "reproduce" in sections:
        rows += check_reproductions(records, spec.get("reproductions", {}))
    return rows


def failed(rows: list[CheckRow]) -> list[CheckRow]:
    """The rows that regressed."""
    return [row for row in rows if row.status == FAIL]
