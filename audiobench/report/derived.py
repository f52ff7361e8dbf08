"""Figures derived from a result record: the complexity-budget verdict and the spread over clip groups.

* :func:`budget_verdict` compares a complexity record (``audiobench.complexity.measure_complexity``) with a
  task card's ``complexity_budget`` (DCASE23 task 1: at most 128 000 parameters and 30 M MACs per second).
* :func:`device_spread` is the "DG" column of the DIR table (Morocutti et al., EUSIPCO 2023): the population
  standard deviation (ddof 0) of the nine per-device accuracies; lower means more device-robust.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

GROUP_PREFIX = "@group="  # per-group metric keys: "<metric>@group=<device>"
DEFAULT_DEVICES = ("a", "b", "c", "s1", "s2", "s3", "s4", "s5", "s6")


def _number(value: Any) -> float | None:
    return None if value is None or isinstance(value, bool) else float(value)


def budget_verdict(complexity: Mapping[str, Any], budget: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the counted model meets ``budget`` (``max_params``, ``max_macs_per_second``; others ignored).

    Parameters are ``complexity["params"]["total"]``; MACs per second of audio are
    ``complexity["macs"]["per_second"]`` or, when absent, ``macs.total / input.seconds``. A limit whose
    count is unknown gives ``None`` for that check and for ``within`` (never a silent pass).
    """
    params = _number((complexity.get("params") or {}).get("total"))
    macs = complexity.get("macs") or {}
    per_second = _number(macs.get("per_second"))
    seconds = _number((complexity.get("input") or {}).get("seconds"))
    if per_second is None and _number(macs.get("total")) is not None and seconds:
        per_second = float(macs["total"]) / seconds
    checks = {"params": (params, _number(budget.get("max_params"))),
              "macs_per_second": (per_second, _number(budget.get("max_macs_per_second")))}
    verdict: dict[str, Any] = {}
    for name, (value, limit) in checks.items():
        if limit is None:
            continue
        verdict[name] = value
        verdict[f"max_{name}"] = limit
        verdict[f"{name}_within"] = None if value is None else value <= limit
    flags = [verdict[key] for key in verdict if key.endswith("_within")]
    verdict["within"] = None if not flags or any(flag is None for flag in flags) else all(flags)
    verdict["counted_seconds"] = seconds
    verdict["source"] = budget.get("source")
    verdict["note"] = ("MACs counted by audiobench's operator-level counter (front-end excluded unless the model "
                       "has none); DCASE23 counted with NeSsi/torchinfo, which can differ slightly")
    return verdict


def device_spread(metrics: Mapping[str, Mapping[str, Any]], metric: str = "accuracy",
                  devices: tuple[str, ...] = DEFAULT_DEVICES, split: str | None = None) -> dict[str, Any]:
    """Std (ddof 0) over the per-device values ``<metric>@group=<device>`` of a record's ``metrics``.

    Uses each block's ``mean`` (or ``per_split[split]``). ``complete`` says whether every device in
    ``devices`` had a value; the std is over the devices present (None with fewer than two).
    """
    values: dict[str, float] = {}
    for device in devices:
        block = metrics.get(f"{metric}{GROUP_PREFIX}{device}")
        if not block:
            continue
        value = block["mean"] if split is None else block.get("per_split", {}).get(split)
        if value is not None:
            values[device] = float(value)
    spread = float(np.std(list(values.values()), ddof=0)) if len(values) >= 2 else None
    return {"metric": metric, "std": spread, "std_ddof": 0, "devices": values,
            "complete": len(values) == len(devices), "definition": "DIR table 'DG': std of per-device values"}
