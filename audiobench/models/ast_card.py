"""Model card of the AudioSet AST (torch-free, so the catalog can list it without importing torch).

The network and its front-end live in :mod:`audiobench.models.ast` (needs the optional
``transformers`` dependency).
"""

from __future__ import annotations

from typing import Any

from audiobench.models.cards import CheckpointInfo, ModelCard, ModelSpec

AST_HF_ID = "MIT/ast-finetuned-audioset-10-10-0.4593"
AST_WEIGHTS_URL = f"https://huggingface.co/{AST_HF_ID}/resolve/main/model.safetensors"

# ASTConfig fields of the AudioSet 10-10 checkpoint (the ASTConfig defaults, written out so the card says
# what is built): DeiT-base encoder, 16x16 patches at stride 10 (frequency) x 10 (time) over
# 1024 frames x 128 mel bands -> 12 x 101 patches.
AST_AUDIOSET_CONFIG: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "patch_size": 16,
    "frequency_stride": 10,
    "time_stride": 10,
    "max_length": 1024,
    "num_mel_bins": 128,
    "layer_norm_eps": 1e-12,
    "qkv_bias": True,
}

AST_FRONTEND = ("kaldi-fbank128 (16 kHz, 25 ms Hann window, 10 ms shift, 512-point FFT, pre-emphasis 0.97, "
                "128 Kaldi mel bands 20-8000 Hz, natural log; (x + 4.2677393) / (2 * 4.5689974); "
                "zero-padded or cut to 1024 frames = 10.24 s)")


def ast_specs() -> list[ModelSpec]:
    """Spec of the AudioSet-fine-tuned AST (single model, 10-10 stride, 0.459 mAP)."""
    from audiobench.models.catalog import published_for  # late import: the catalog imports this module

    card = ModelCard(
        name="ast-audioset",
        family="ast",
        description="Audio Spectrogram Transformer (Gong et al. 2021; DeiT-base, patch 16, stride 10x10) "
                    "fine-tuned on AudioSet (Hugging Face transformers implementation); clips longer than "
                    "10.24 s are cut, shorter ones padded",
        sample_rate=16000,
        embedding_dim=768,
        config={"hf_id": AST_HF_ID, **AST_AUDIOSET_CONFIG},
        num_classes=527,
        label_set="audioset",
        output_activation="sigmoid",
        frontend=AST_FRONTEND,
        checkpoint=CheckpointInfo(
            file_name="ast-finetuned-audioset-10-10-0.4593.safetensors",
            url=AST_WEIGHTS_URL,
            license="BSD-3-Clause (AST)",
        ),
        published=published_for("AST (single)", task="audioset"),
    )
    return [ModelSpec(name="ast-audioset", target="audiobench.models.ast:build_ast", card=card)]
