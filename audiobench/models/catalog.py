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
MEL128 = "efficientat-mel128 (32 kHz, win 800, hop {hop}, n_fft 1024, 128 Kaldi mel bands, 0-15 kHz)"

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
# the others have no sha256 on their card, so they are not verified; every result record still carries
# the sha256 of the file it used).
VERIFIED_CHECKPOINTS: dict[str, tuple[str, int]] = {
    "mn04_as_mAP_432.pt": ("899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c", 4066513),
}


@lru_cache(maxsize=1)
def published_records() -> tuple[dict[str, Any], ...]:
    """All curated published records."""
    # Parsed when the registry is imported, so on every command: the parse is kept as JSON under the sha256 of
    # the file's text (libyaml, when there, is ~8x faster than pure-Python YAML; JSON is faster still).
    import hashlib
    import json

    from audiobench.atomic import atomic_write_bytes
    from audiobench.cachedir import cache_subdir

    text = published_numbers_file().read_text()
    parsed = cache_subdir("parsed") / f"published-{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"
    try:
        return tuple(json.loads(parsed.read_text())["records"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent or damaged: parse the YAML
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    try:
        atomic_write_bytes(parsed, json.dumps({"records": data["records"]}, default=str).encode())
    except OSError:
        pass  # a read-only cache only costs the parse
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
            frontend=MEL128.format(hop=320),
            checkpoint=_checkpoint(file_name),
            published=published_for(f"{name}_as", task="audioset"),
        )
        specs.append(ModelSpec(name=name, target="audiobench.models.mel_adapter:build_mobilenet", card=card))
    return specs


# DyMN release files: EfficientAT models/dymn/model.py pretrained_models @ a425fdce.
DYMN_RELEASES: dict[str, tuple[float, str]] = {
    "dymn04": (0.4, "dymn04_as.pt"),
    "dymn10": (1.0, "dymn10_as.pt"),
    "dymn20": (2.0, "dymn20_as_mAP_493.pt"),
}

# No public download URL is published for this file (fschmid56/cpjku_dcase23 shares no release asset):
# url is None and the file is passed with --checkpoint PATH (or put into the checkpoint cache under its name).
# sha256 and size: of the file staged in ../shared/models/cpmobile_dcase23.
CPMOBILE_CHECKPOINT = CheckpointInfo(
    file_name="cpmobile_tau22_c0a7nzin.ckpt",
    url=None,
    sha256="41a1ff72cadb90f6ce0345ed961822f7d0a77ab92b5fcafe9e07d00d891ce118",
    size_bytes=1637055,
    license="see fschmid56/cpjku_dcase23",
    key_prefix="model.",
)


def dymn_specs() -> list[ModelSpec]:
    """Specs of the EfficientAT dynamic MobileNets (AudioSet checkpoints, dynamic-conv temperature 1)."""
    specs = []
    for name, (width, file_name) in DYMN_RELEASES.items():
        card = ModelCard(
            name=name, family="efficientat-dymn",
            description=f"EfficientAT dynamic MobileNet (width {width}: dynamic conv, Dy-ReLU, coordinate attention)",
            sample_rate=32000, embedding_dim=make_divisible(160 * width) * 6,
            config={"width_mult": width, "temperature": 1.0}, num_classes=527, label_set="audioset",
            output_activation="sigmoid", frontend=MEL128.format(hop=320), checkpoint=_checkpoint(file_name),
            published=published_for(f"{name}_as", task="audioset"),
        )
        specs.append(ModelSpec(name=name, target="audiobench.models.mel_adapter:build_dymn", card=card))
    return specs


def passt_specs() -> list[ModelSpec]:
    """Specs of the released AudioSet PaSST checkpoints (one network class, configs differ)."""
    from audiobench.models.passt_releases import PASST_RELEASES

    specs = []
    for name, release in PASST_RELEASES.items():
        card = ModelCard(
            name=name, family="passt",
            description=f"PaSST {release.arch} (ViT, patch 16, stride {release.stride}, depth {release.depth}, "
                        f"{release.input_tdim} frames)",
            sample_rate=32000, embedding_dim=768,
            config={"release": name, "arch": release.arch, "hop_length": release.stft_hop},
            num_classes=527, label_set="audioset", output_activation="sigmoid",
            frontend=MEL128.format(hop=release.stft_hop),
            checkpoint=CheckpointInfo(file_name=release.file_name, url=release.url, license="Apache-2.0 (PaSST)"),
            published=published_for(release.arch, task="audioset"),
        )
        specs.append(ModelSpec(name=name, target="audiobench.models.mel_adapter:build_passt", card=card))
    return specs


def cpmobile_specs() -> list[ModelSpec]:
    """CP-Mobile, the CP-JKU DCASE 2023 Task 1 low-complexity scene classifier (10 TAU22 scenes)."""
    card = ModelCard(
        name="cpmobile", family="cp-mobile",
        description="CP-Mobile (DCASE 2023 Task 1, CP-JKU); budget: <= 128 k params, <= 30 MMACs per 1 s",
        sample_rate=32000, embedding_dim=168,
        config={"segment_seconds": 1.0, "dcase23_budget": {"max_params": 128_000, "max_macs_per_second": 30_000_000}},
        num_classes=10, label_set="tau22", output_activation="softmax",
        frontend="cp-mobile-mel256 (32 kHz, win 3072, hop 500, n_fft 4096, 256 Kaldi mel bands, 0-15.5 kHz), 1 s segments",
        checkpoint=CPMOBILE_CHECKPOINT,
        published=published_for("CP-Mobile student (KD from CP-ResNet+PaSST teacher ensemble)"),
    )
    return [ModelSpec(name="cpmobile", target="audiobench.models.mel_adapter:build_cpmobile", card=card)]


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
    from audiobench.models.ast_card import ast_specs
    from audiobench.models.rcnn_card import rcnn_specs

    return (mobilenet_specs() + dymn_specs() + passt_specs() + ast_specs() + cpmobile_specs() + baseline_specs()
            + rcnn_specs())
