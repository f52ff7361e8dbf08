"""The built-in model zoo: one spec per released model, built from tables, not from code per model.

Published numbers on the cards are read from ``leaderboards/published.yaml`` (each keeps its record
id and source), never typed in here.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml

from audiobench.models.channels import make_divisible
from audiobench.models.cards import CheckpointInfo, ModelCard, ModelSpec, PublishedNumber
from audiobench.resources import published_numbers_file

EFFICIENTAT_RELEASE = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/"
EFFICIENTAT_LICENSE = "MIT (EfficientAT release v0.0.1)"

# name -> (width multiplier, release file of the AudioSet checkpoint). File names: EfficientAT
# models/mn/model.py pretrained_models list @ a425fdce, as quoted in shared/reference/published.yaml.
MOBILENET_RELEASES: dict[str, tuple[float, str]] = {
    "mn01": (0.1, "mn01_as_mAP_298.pt"),
    "mn02": (0.2, "mn02_as_mAP_378.pt"),
    "mn04": (0.4, "mn04_as_mAP_432.pt"),
    "mn05": (0.5, "mn05_as_mAP_443.pt"),
    "mn10": (1.0, "mn10_as_mAP_471.pt"),
    "mn20": (2.0, "mn20_as_mAP_478.pt"),
    "mn30": (3.0, "mn30_as_mAP_482.pt"),
    "mn40": (4.0, "mn40_as_mAP_484.pt"),
}

# Hashes verified here on the real release files (only the files staged in ../shared could be checked;
# the others are recorded on first download, see audiobench.models.checkpoints).
VERIFIED_CHECKPOINTS: dict[str, tuple[str, int]] = {
    "mn04_as_mAP_432.pt": ("899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c", 4066513),
}


@lru_cache(maxsize=1)
def published_records() -> tuple[dict[str, Any], ...]:
    """All curated published records."""
    data = yaml.safe_load(published_numbers_file().read_text())
    return tuple(data["records"])


def published_for(model_id: str, task: str | None = None) -> tuple[PublishedNumber, ...]:
    """Published numbers whose ``model`` field is ``model_id`` (optionally only for ``task``)."""
    return tuple(
        PublishedNumber(
            task=r["task"], metric=r["metric"], value=float(r["value"]), unit=r["unit"],
            params_M=r.get("params_M"), macs_G=r.get("macs_G"), source=r["source"], record_id=r["id"],
        )
        for r in published_records()
        if r["model"] == model_id and (task is None or r["task"] == task)
    )


def _checkpoint(file_name: str) -> CheckpointInfo:
    sha256, size = VERIFIED_CHECKPOINTS.get(file_name, (None, None))
    return CheckpointInfo(file_name=file_name, url=EFFICIENTAT_RELEASE + file_name, sha256=sha256,
                          size_bytes=size, license=EFFICIENTAT_LICENSE)


def mobilenet_specs() -> list[ModelSpec]:
    """Specs of the EfficientAT MobileNets with released AudioSet checkpoints."""
    specs = []
    for name, (width, file_name) in MOBILENET_RELEASES.items():
        card = ModelCard(
            name=name,
            family="efficientat-mn",
            description=f"EfficientAT MobileNetV3 (width {width}) trained on AudioSet with KD from PaSST",
            sample_rate=32000,
            embedding_dim=make_divisible(160 * width) * 6,
            config={"width_mult": width},
            num_classes=527,
            label_set="audioset",
            output_activation="sigmoid",
            frontend="efficientat-mel128 (32 kHz, win 800, hop 320, n_fft 1024, 128 Kaldi mel bands, 0-15 kHz)",
            checkpoint=_checkpoint(file_name),
            published=published_for(f"{name}_as", task="audioset"),
        )
        specs.append(ModelSpec(name=name, target="audiobench.models.efficientat_adapter:build", card=card))
    return specs


def baseline_specs() -> list[ModelSpec]:
    """Models that need no weights (for the embedded default and for sanity baselines)."""
    card = ModelCard(
        name="logmel-stats",
        family="baseline",
        description="No learned weights: per-band mean and standard deviation of the EfficientAT log-mel",
        sample_rate=32000,
        embedding_dim=256,
        frontend="efficientat-mel128",
    )
    return [ModelSpec(name="logmel-stats", target="audiobench.models.baselines:build_logmel_stats", card=card)]


def builtin_model_specs() -> list[ModelSpec]:
    """Every built-in model spec."""
    return mobilenet_specs() + baseline_specs()
