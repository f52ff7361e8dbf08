"""KEY=VALUE options read as YAML values, with errors naming the option."""

from __future__ import annotations

import pytest

from audiobench.errors import AudiobenchError, ProtocolError
from audiobench.key_values import parse_key_values


def test_values_are_read_as_yaml() -> None:
    assert parse_key_values(["split=25", "flag=true", "augment=[roll, mixup]", "name = x "], "--o", "a=1") == {
        "split": 25, "flag": True, "augment": ["roll", "mixup"], "name": "x"}


@pytest.mark.parametrize("item, message", [("novalue", "needs KEY=VALUE"), ("=3", "needs KEY=VALUE"),
                                           ("a=[1, 2", "not valid YAML")])
def test_malformed_items_name_the_option(item: str, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_key_values([item], "--recipe-option", "lr=1e-4", ProtocolError)
    assert "--recipe-option" in str(caught.value) and isinstance(caught.value, AudiobenchError)
