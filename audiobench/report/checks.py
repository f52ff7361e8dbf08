"""The building blocks of ``audiobench check``: one row per thing checked, and the regression spec."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from audiobench.errors import AudiobenchError

PASS, FAIL, SKIP = "pass", "FAIL", "skip"


@dataclass
class CheckRow:
    """One check: what was compared, the measured and expected values, and the verdict."""

    section: str
    subject: str
    quantity: str
    measured: Any
    expected: Any
    tolerance: str
    status: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    """A YAML mapping, with a clear error when it cannot be read."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise AudiobenchError(f"{what} {path} cannot be read ({type(error).__name__}: {error}).",
                              hint="Check the path and the YAML syntax.") from None
    if not isinstance(data, dict):
        raise AudiobenchError(f"{what} {path} is not a YAML mapping.")
    return data


def within(measured: float, expected: float, relative: float = 0.0, absolute: float = 0.0) -> bool:
    """``|measured - expected| <= max(relative * |expected|, absolute)`` (with float slack)."""
    return abs(measured - expected) <= max(relative * abs(expected), absolute) + 1e-12


def rounding_slack(value: float) -> float:
    """Half a unit of the last digit ``value`` was published with (0.124 -> 0.0005)."""
    text = repr(float(value))
    decimals = len(text.split(".")[1]) if "." in text and "e" not in text else 0
    return 0.5 * 10 ** -decimals
