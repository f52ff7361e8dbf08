"""Channel-count rounding shared by the MobileNet family (torch-free, so model cards can use it)."""

from __future__ import annotations


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (TF MobileNet rule).

    The result is at least ``min_value`` (default ``divisor``) and never more than 10% below ``v``.
    """
    if min_value is None:
        min_value = divisor
    rounded = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * v:
        rounded += divisor
    return int(rounded)
