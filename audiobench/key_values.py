"""``KEY=VALUE`` command-line options (``--dataset-option``, ``--recipe-option``, ...) read into a dict."""

from __future__ import annotations

from typing import Any

from audiobench.errors import AudiobenchError


def parse_key_values(items: list[str], option: str, example: str,
                     error: type[AudiobenchError] = AudiobenchError) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a dict; values are read as YAML (``25`` -> 25, ``true`` -> True,
    ``[roll, gain]`` -> a list). A malformed item raises ``error`` naming ``option`` with ``example``."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise error(f"{option} needs KEY=VALUE, got {item!r}.", hint=f"E.g. {option} {example}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise error(f"{option} {item!r}: the value is not valid YAML.",
                        hint="Write lists as [a, b] and strings plainly, e.g. augment=[roll,mixup].") from None
    return options
