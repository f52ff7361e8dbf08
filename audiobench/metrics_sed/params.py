"""The DCASE task 4 (DESED) evaluation parameters, and the versions of the libraries that apply them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

# PSDS scenarios of DCASE 2021-2024 task 4 (protocols.md 4.7). cttc does not enter scenario 1
# (alpha_ct 0); psds_eval still takes a value, the DESED baseline passes its default 0.3.
PSDS_SCENARIOS: dict[str, dict[str, Any]] = {
    "PSDS1": {"dtc_threshold": 0.7, "gtc_threshold": 0.7, "cttc_threshold": None, "alpha_ct": 0.0,
              "alpha_st": 1.0, "max_efpr": 100.0, "unit_of_time": "hour"},
    "PSDS2": {"dtc_threshold": 0.1, "gtc_threshold": 0.1, "cttc_threshold": 0.3, "alpha_ct": 0.5,
              "alpha_st": 1.0, "max_efpr": 100.0, "unit_of_time": "hour"},
}
PSDS_EVAL_CTTC_SCENARIO1 = 0.3  # what psds_eval gets for cttc "none" (irrelevant with alpha_ct 0)

F1_THRESHOLD = 0.5
INTERSECTION_F1 = {"dtc_threshold": 0.5, "gtc_threshold": 0.5, "cttc_threshold": 0.3}
COLLAR_F1 = {"onset_collar_s": 0.2, "offset_collar_s": 0.2, "offset_collar_rate": 0.2}
SEGMENT_F1 = {"segment_length_s": 1.0}

LIBRARIES = ("psds_eval", "sed_eval", "sed_scores_eval")


def library_version(name: str) -> str:
    """Installed version of a scoring library ("not installed" when absent)."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def metric(name: str, value: float | None, implementation: str, parameters: dict[str, Any],
           **extra: Any) -> dict[str, Any]:
    """One metric row: name, value (a fraction, 0-1), implementation, its version, every parameter."""
    row = {"name": name, "value": None if value is None else float(value), "implementation": implementation,
           "version": library_version(implementation), "parameters": dict(parameters)}
    row.update(extra)
    return row
