"""``check`` section 1: every catalog model's measured params and MACs against its published values."""

from __future__ import annotations

from typing import Any, Iterable

from audiobench.report.checks import FAIL, PASS, SKIP, CheckRow, rounding_slack, within

SECTION = "complexity"


def _published_by_id(published: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {record["id"]: record for record in published.get("records", [])}


def _reference(card: Any, by_id: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The card's published complexity, read from the published file (AudioSet mAP records first)."""
    numbers = sorted(card.published, key=lambda n: not (n.task == "audioset" and n.metric == "mAP"))
    for number in numbers:
        record = by_id.get(number.record_id)
        if record is not None and (record.get("params_M") is not None or record.get("macs_G") is not None):
            return record
    return None


def measured_complexity(name: str) -> dict[str, Any]:
    """Params and MACs of catalog model ``name`` for its standard input, counted on the meta device (cached)."""
    import torch

    from audiobench.complexity import cached_complexity
    from audiobench.models.loading import load_model

    with torch.device("meta"):
        model = load_model(name)
    return cached_complexity(model)


def check_complexity(models: Iterable[Any], published: dict[str, Any], spec: dict[str, Any]) -> list[CheckRow]:
    """Rows comparing measured params (M) and MACs (G) of ``models`` (catalog cards) with published values
    (or, for models without them, with the spec's reference counts of the original implementations)."""
    by_id = _published_by_id(published)
    references = {entry["model"]: {**entry, "id": "reference", "confidence": entry["source"]}
                  for entry in spec.get("references", []) or []}
    rows = []
    for card in models:
        reference = _reference(card, by_id) or references.get(card.name)
        if reference is None:
            rows.append(CheckRow(SECTION, card.name, "params/MACs", None, None, "-", SKIP,
                                 "no published params or MACs on its card"))
            continue
        tolerances = {**spec.get("default", {}), **spec.get("by_family", {}).get(card.family, {})}
        record = measured_complexity(card.name)
        measured = {"params_M": record["params"]["total"] / 1e6, "macs_G": record["macs"]["total"] / 1e9}
        for key, tolerance_key, label in (("params_M", "params_rel", "params (M)"), ("macs_G", "macs_rel", "MACs (G)")):
            expected = reference.get(key)
            if expected is None:
                continue
            relative = float(tolerances.get(tolerance_key, 0.0))
            ok = within(measured[key], float(expected), relative, rounding_slack(expected))
            rows.append(CheckRow(SECTION, card.name, label, round(measured[key], 6), expected,
                                 f"{relative:.1%} or rounding", PASS if ok else FAIL,
                                 f"{reference['id']} ({reference.get('confidence', '?')})"))
    return rows
