"""Model cards: plain metadata about a model (no torch import), shown by ``audiobench list models``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckpointInfo:
    """Where the officially released weights of a model come from."""

    file_name: str
    url: str | None  # None when no public download URL exists (the file is passed by hand)
    sha256: str | None = None  # None when the release publishes no hash and none was verified here
    size_bytes: int | None = None
    license: str | None = None
    key_prefix: str = ""  # state_dict keys start with this prefix (e.g. "model." in Lightning files)


@dataclass(frozen=True)
class PublishedNumber:
    """A number published for the model, with the record id and source it comes from."""

    task: str
    metric: str
    value: float
    unit: str
    params_M: float | None
    macs_G: float | None
    source: str
    record_id: str


@dataclass(frozen=True)
class ModelCard:
    """Everything a user needs to know about a model before running it."""

    name: str
    family: str
    description: str
    sample_rate: int
    embedding_dim: int
    config: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None  # size of the pretrained head, None if the model has none
    label_set: str | None = None  # e.g. "audioset" (labels resolved by audiobench.labels)
    output_activation: str | None = None  # "sigmoid" (multi-label) or "softmax"
    frontend: str | None = None
    checkpoint: CheckpointInfo | None = None
    published: tuple[PublishedNumber, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form of the card."""
        return asdict(self)


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry for a model: its card and the lazy ``"module:factory"`` that builds it.

    The factory is called as ``factory(card)`` and returns an :class:`audiobench.models.base.AudioModel`
    with randomly initialised (or no) weights; weights are loaded by :func:`audiobench.load_model`.
    """

    name: str
    target: str
    card: ModelCard

    @property
    def info(self) -> ModelCard:
        return self.card
