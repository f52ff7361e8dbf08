"""``check`` section 2: every record rescored from its predictions, made by today's code, and paired with
published numbers."""

from __future__ import annotations

from typing import Any

from audiobench.code_version import record_code_changes, same_python
from audiobench.errors import AudiobenchError
from audiobench.report.checks import FAIL, PASS, SKIP, CheckRow, within
from audiobench.report.records import RecordFile
from audiobench.report.rescore import rescore

SECTION = "records"


def _rescore_row(record: RecordFile) -> CheckRow:
    try:
        result = rescore(record.path)
    except AudiobenchError as error:
        return CheckRow(SECTION, record.path.name, "rescore", None, None, "exact", FAIL, str(error))
    differing = [f"{r['metric']}/{r['split']}" for r in result["rows"] if not r["equal"]]
    return CheckRow(SECTION, record.path.name, "rescore from predictions", "identical" if not differing else differing,
                    "identical", "exact", PASS if not differing else FAIL,
                    f"{result['clips']} clips" if not differing else "the predictions do not give the recorded numbers")


def _code_row(record: RecordFile) -> CheckRow:
    """Whether today's model, input pipeline and protocol code is the code that made the record (a record made
    by other code stands for code that no longer exists, even when its numbers still reproduce: re-run it)."""
    changes = record_code_changes(record.record)
    if changes is None:
        made = (record.record.get("provenance") or {}).get("python")
        why = ("the record names no model, input pipeline or protocol code version to compare" if same_python(
            record.record) else f"made under Python {made}: code versions compare only under the same Python "
                                "version (their syntax trees differ); the reproduce section re-runs it")
        return CheckRow(SECTION, record.path.name, "code version", None, None, "-", SKIP, why)
    if not changes:
        return CheckRow(SECTION, record.path.name, "code version", "current", "current", "exact", PASS,
                        "made by today's model, input pipeline and protocol code")
    command = record.record.get("provenance", {}).get("command") or "its command"
    return CheckRow(SECTION, record.path.name, "code version", f"{' and '.join(changes)} changed", "current", "exact",
                    FAIL, f"{' and '.join(changes)} code changed since this record: re-run `{command}` "
                          "(or `audiobench sweep`) and commit the new record in place of this one")


def _pairing_matches(pairing: dict[str, Any], record: RecordFile) -> bool:
    match = pairing.get("match", {})
    values = {"task": record.task, "model": record.model, "metric": record.primary_metric,
              "protocol": record.record["protocol"].get("name"), "official": record.official}
    return all(values.get(key) == value for key, value in match.items())


def _published_rows(record: RecordFile, pairings: list[dict[str, Any]], by_id: dict[str, Any]) -> list[CheckRow]:
    rows = []
    for pairing in (p for p in pairings if _pairing_matches(p, record)):
        published = by_id.get(pairing["published_id"])
        if published is None:
            rows.append(CheckRow(SECTION, record.path.name, "published", None, pairing["published_id"], "-", FAIL,
                                 "the paired published record is missing from the published file"))
            continue
        scale = 0.01 if published.get("unit") == "percent" else 1.0
        expected = float(published["value"]) * scale
        measured = record.score(published["metric"])["mean"]
        ok = within(measured, expected, absolute=float(pairing["abs"]))
        rows.append(CheckRow(SECTION, record.path.name, f"{published['metric']} vs published", round(measured, 6),
                             expected, f"±{pairing['abs']}", PASS if ok else FAIL,
                             f"{published['id']}: {published.get('source', '')}"))
    return rows


def check_records(records: list[RecordFile], published: dict[str, Any], spec: dict[str, Any]) -> list[CheckRow]:
    """Rescore every record; compare the paired ones with their published numbers."""
    by_id = {r["id"]: r for r in published.get("records", [])}
    pairings = spec.get("pairings", []) or []
    rows = []
    for record in records:
        rows.append(_rescore_row(record))
        rows.append(_code_row(record))
        paired = _published_rows(record, pairings, by_id)
        rows.extend(paired or [CheckRow(SECTION, record.path.name, "vs published", record.score()["mean"], None, "-",
                                        SKIP, "no published number for this model, task and protocol")])
    return rows
