"""The "Rethinking CNN" baselines: torchvision-layout ImageNet CNNs, the multi-resolution log-mel, the adapter.

Key layouts are checked against shared/fixtures/torchvision/architectures.json (generated with torchvision);
parameter counts against the ``num_params`` that torchvision's documentation publishes for each weight set.
Big networks are built on the meta device (no memory, no arithmetic); forward passes use ResNet-18.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
from torch import nn

from shared_material import SHARED, require
from audiobench.complexity import measure_complexity
from audiobench.errors import AudiobenchError
from audiobench.models.cards import ModelCard
from audiobench.models.checkpoints import describe_mismatch, load_weights
from audiobench.models.imagenet_cnns import (ARCHITECTURES, build_imagenet_cnn, inception_transform_input,
                                             rename_legacy_densenet_keys)
from audiobench.models.multires_logmel import PRESETS, MultiResConfig, MultiResLogMel, resize_frames
from audiobench.models.rcnn import RethinkingCNN, build_rcnn

FIXTURE = SHARED / "fixtures" / "torchvision" / "architectures.json"
# num_params of the IMAGENET1K_V1 weights in torchvision's documentation (pytorch.org/vision/stable/models)
DOCUMENTED_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                     "densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
                     "densenet201": 20_013_928, "inception_v3": 27_161_264}
SR = 44100


@lru_cache(maxsize=None)
def meta_network(arch: str) -> nn.Module:
    """``arch`` on the meta device (shapes only; torchvision's init skipped: it costs seconds there)."""
    with torch.device("meta"):
        return build_imagenet_cnn(arch, init_weights=False)


def _params(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_state_dict_layout_equals_torchvision(arch: str) -> None:
    reference = json.loads(require(FIXTURE).read_text())["models"][arch]
    network = meta_network(arch)
    got = [[key, list(value.shape), str(value.dtype)] for key, value in network.state_dict().items()]
    assert got == reference["state_dict"]  # names, order, shapes, dtypes (incl. BN num_batches_tracked)
    assert _params(network) == reference["params"]


@pytest.mark.parametrize("arch", sorted(DOCUMENTED_PARAMS))
def test_parameter_counts_equal_documented(arch: str) -> None:
    assert _params(meta_network(arch)) == DOCUMENTED_PARAMS[arch]


@pytest.mark.parametrize("arch, key, shape", [
    ("densenet121", "features.denseblock1.denselayer1.norm1.weight", (64,)),
    ("densenet121", "features.transition3.conv.weight", (512, 1024, 1, 1)),
    ("densenet121", "classifier.weight", (1000, 1024)),
    ("resnet50", "layer1.0.conv1.weight", (64, 64, 1, 1)),
    ("resnet50", "layer2.0.conv2.weight", (128, 128, 3, 3)),  # stride on the 3x3 conv (V1.5)
    ("resnet50", "layer2.0.downsample.0.weight", (512, 256, 1, 1)),
    ("resnet18", "layer4.1.bn2.running_var", (512,)),
    ("inception_v3", "Mixed_5b.branch1x1.conv.weight", (64, 192, 1, 1)),
    ("inception_v3", "Mixed_7b.branch3x3dbl_3b.conv.weight", (384, 384, 3, 1)),
    ("inception_v3", "AuxLogits.fc.weight", (1000, 768)),
])
def test_sample_keys(arch: str, key: str, shape: tuple) -> None:
    assert tuple(meta_network(arch).state_dict()[key].shape) == shape


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(AudiobenchError, match="resnet7"):
        build_imagenet_cnn("resnet7")


def test_saved_state_dict_reloads_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    network = build_imagenet_cnn("resnet18").eval()
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
    torch.save(network.state_dict(), tmp_path / "resnet18.pth")
    twin = build_imagenet_cnn("resnet18", init_weights=False).eval()
    load_weights(twin, tmp_path / "resnet18.pth")  # audiobench's strict loader (weights_only=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), network(x))


def test_legacy_densenet_keys_are_renamed() -> None:
    assert rename_legacy_densenet_keys({"features.denseblock2.denselayer11.norm.1.running_var": 1,
                                        "features.denseblock1.denselayer1.conv.2.weight": 2,
                                        "features.transition1.norm.weight": 3}) == {
        "features.denseblock2.denselayer11.norm1.running_var": 1,
        "features.denseblock1.denselayer1.conv2.weight": 2,
        "features.transition1.norm.weight": 3}
    network = build_imagenet_cnn("densenet121")
    modern = network.state_dict()
    # as in densenet121-a639ec97.pth: "norm.1" names and no BatchNorm num_batches_tracked counters
    legacy = {key.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2."): value
              for key, value in modern.items() if not key.endswith("num_batches_tracked")}
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    assert describe_mismatch(network, legacy) is not None
    adapted = network.adapt_checkpoint(legacy)
    assert describe_mismatch(network, adapted) is None  # what the strict loader checks first
    legacy["features.denseblock4.denselayer16.norm.1.weight"] = torch.full((992,), 0.5)
    network.load_state_dict(legacy, strict=True)  # the load-time hook renames, torch adds the counters
    assert torch.equal(network.features.denseblock4.denselayer16.norm1.weight, torch.full((992,), 0.5))


def _without_batchnorm(network: nn.Module) -> nn.Module:
    """``network`` with every BatchNorm2d replaced by Identity: on the meta device BN runs slow Python
    decompositions, and the shapes and branch logic checked here do not depend on it."""
    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(module, name, nn.Identity())
    return network


def test_inception_aux_branch_and_transform_input() -> None:
    with torch.device("meta"):
        network = _without_batchnorm(build_imagenet_cnn("inception_v3", init_weights=False)).train()
        logits, aux = network(torch.empty(2, 3, 299, 299))  # training mode: (logits, aux_logits) as torchvision
        assert logits.shape == aux.shape == (2, 1000)
        assert network.eval()(torch.empty(1, 3, 128, 250)).shape == (1, 1000)
        network.train().aux_logits = False  # what the adapter sets: the aux branch would fail on 6 x 7 maps
        assert network(torch.empty(2, 3, 128, 250)).shape == (2, 1000)
    x = torch.randn(2, 3, 4, 4)
    transformed = inception_transform_input(x)
    torch.testing.assert_close(transformed[:, 0], x[:, 0] * 0.229 / 0.5 + (0.485 - 0.5) / 0.5)
    torch.testing.assert_close(transformed[:, 2], x[:, 2] * 0.225 / 0.5 + (0.406 - 0.5) / 0.5)


# ------------------------------------------------------------------------------------------ front-end


def test_frontend_shape_and_lengths() -> None:
    config = MultiResConfig()
    assert config.lengths() == [(1102, 441), (2205, 1102), (4410, 2205)]  # round(1102.5) == 1102 (to even)
    frontend = MultiResLogMel(config)
    wave = 0.1 * torch.randn(2, 5 * SR, generator=torch.Generator().manual_seed(0))
    images = frontend(wave)
    assert images.shape == (2, 3, 128, 250) and images.dtype == torch.float32
    assert torch.isfinite(images).all()
    assert frontend(wave[:, : SR]).shape == (2, 3, 128, 250)  # any length is resized to 250 frames
    assert torch.isfinite(frontend(torch.zeros(1, SR))).all()  # silence: log(0 + 1e-6)
    with pytest.raises(ValueError, match="at least 2206 samples"):
        frontend(torch.zeros(1, 1000))
    assert MultiResLogMel(PRESETS["gtzan"])(torch.zeros(1, 22050)).shape == (1, 3, 128, 1500)


def _reference_logmel(wave: np.ndarray, window: int, hop: int, n_fft: int = 4410, sr: int = SR) -> np.ndarray:
    """numpy version of torchaudio's MelSpectrogram (+ log): centred reflect-padded frames, periodic Hann
    window centred in n_fft, |rfft|^2, torchaudio's HTK filterbank (bins on linspace(0, sr // 2)), log(x + 1e-6)."""
    padded = np.pad(wave.astype(np.float64), n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    hann = np.zeros(n_fft)
    hann[(n_fft - window) // 2:(n_fft - window) // 2 + window] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
    power = np.abs(np.fft.rfft(frames * hann, axis=1)) ** 2  # [T, n_fft // 2 + 1]
    edges_mel = np.linspace(0.0, 2595.0 * np.log10(1.0 + (sr // 2) / 700.0), 128 + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    slopes = edges[None, :] - freqs[:, None]  # [freqs, 130]
    down, up = -slopes[:, :-2] / np.diff(edges)[:-1], slopes[:, 2:] / np.diff(edges)[1:]
    banks = np.maximum(0.0, np.minimum(down, up))  # [freqs, 128]
    return np.log(power @ banks + 1e-6).T.astype(np.float32)


def test_frontend_matches_an_independent_reference() -> None:
    """The original pipeline redone with numpy + PIL: STFT power, HTK mel (no norm), log, PIL bilinear resize."""
    image_module = pytest.importorskip("PIL.Image")
    config = MultiResConfig()
    wave = (0.1 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    ours = MultiResLogMel(config)(torch.from_numpy(wave)[None])[0].numpy()
    for channel, (window, hop) in enumerate(config.lengths()):
        expected = np.asarray(image_module.fromarray(_reference_logmel(wave, window, hop)).resize(
            (250, 128), image_module.BILINEAR))
        np.testing.assert_allclose(ours[channel], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("frames_in", [37, 101, 201, 501, 1000])
def test_resize_matches_pil(frames_in: int) -> None:
    image_module = pytest.importorskip("PIL.Image")
    spec = np.random.default_rng(frames_in).standard_normal((128, frames_in)).astype(np.float32)
    expected = np.asarray(image_module.fromarray(spec).resize((250, 128), image_module.BILINEAR))
    np.testing.assert_allclose(resize_frames(torch.from_numpy(spec), 250).numpy(), expected, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------- adapter


def rcnn_card(arch: str = "resnet18", embedding_dim: int = 512, **extra: object) -> ModelCard:
    fields = dict(name=f"rcnn-{arch}", family="rethinking-cnn", description="test card", sample_rate=SR,
                  embedding_dim=embedding_dim, config={"arch": arch, "frontend": "esc50"},
                  output_activation="softmax")
    return ModelCard(**{**fields, **extra})


@pytest.fixture(scope="module")
def resnet18_model() -> RethinkingCNN:
    torch.manual_seed(0)
    return build_rcnn(rcnn_card()).prepare_for_inference()


def test_adapter_embed_and_logits(resnet18_model: RethinkingCNN) -> None:
    model = resnet18_model
    waves = 0.1 * torch.randn(2, SR, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        embedding = model.embed(waves)
        assert embedding.shape == (2, 512) and torch.isfinite(embedding).all()
        with pytest.raises(AudiobenchError, match="no audio classification head"):
            model.logits(waves)
        head = model.reset_head(50)
        assert model.head_classes == 50 and head is model.network.fc
        images = model.input_stage()(waves)
        assert images.shape == (2, 3, 128, 250)
        logits = model.logits_inputs(images)
        assert logits.shape == (2, 50)
        torch.testing.assert_close(logits, head(embedding), atol=1e-4, rtol=1e-4)  # head on the embedding
        torch.testing.assert_close(model.head_inputs(images).sum(dim=1), torch.ones(2))  # softmax card
    assert model.min_frame_window_ms == pytest.approx(1000 * 2206 / SR)
    assert model.frontend_config()["window_ms"] == [25.0, 50.0, 100.0]


def _conv_and_linear_macs(network: nn.Module, images: torch.Tensor) -> int:
    """Independent count: k_h k_w C_in/groups C_out H_out W_out per conv, weight elements per linear."""
    counts = []

    def conv_hook(module: nn.Conv2d, _inputs: object, output: torch.Tensor) -> None:
        counts.append(module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
                      * output.numel())

    handles = [m.register_forward_hook(conv_hook) for m in network.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        network(images)
    for handle in handles:
        handle.remove()
    return sum(counts) + sum(m.weight.numel() for m in network.modules() if isinstance(m, nn.Linear))


def test_adapter_complexity_counts_the_network_on_its_input() -> None:
    card = rcnn_card(config={"arch": "resnet18", "network_options": {"init_weights": False}})
    with torch.device("meta"):  # counts only: shapes suffice (as tests/test_complexity.py does)
        model = build_rcnn(card).eval()
    record = measure_complexity(model, seconds=5.0, measure_latency=False)
    assert record["input"]["shape"] == [1, 3, 128, 250] and record["input"]["frontend_counted"] is False
    assert record["params"]["total"] == DOCUMENTED_PARAMS["resnet18"]  # still the ImageNet head
    images = model.network_input(torch.zeros(1, 5 * SR, device="meta"))
    assert record["macs"]["total"] == _conv_and_linear_macs(model.network, images)


def test_inception_adapter_never_runs_aux_and_reset_drops_it() -> None:
    with torch.device("meta"):
        network = build_imagenet_cnn("inception_v3", transform_input=True, init_weights=False)
    model = RethinkingCNN(rcnn_card("inception_v3", 2048), network, MultiResLogMel())
    assert "AuxLogits.fc.weight" in network.state_dict()  # kept: the released file has it
    assert network.aux_logits is False  # ... but never run (see test_inception_aux_branch_and_transform_input)
    aux_params = sum(p.numel() for p in network.AuxLogits.parameters())
    model.reset_head(10)
    assert network.AuxLogits is None and not any(k.startswith("AuxLogits.") for k in network.state_dict())
    assert _params(network) == DOCUMENTED_PARAMS["inception_v3"] - aux_params - 2049 * 1000 + 2049 * 10


@pytest.mark.parametrize("overrides, message", [
    ({"config": {"arch": "resnet18", "frontend": "nope"}}, "unknown front-end preset"),
    ({"sample_rate": 32000}, "sample rate 32000"),
    ({"embedding_dim": 2048}, "embedding_dim 2048"),
])
def test_build_rcnn_card_errors(overrides: dict, message: str) -> None:
    with pytest.raises(AudiobenchError, match=message):
        build_rcnn(rcnn_card(**overrides))


def test_card_with_classes_gets_its_head() -> None:
    model = build_rcnn(rcnn_card(num_classes=10))
    assert model.head_classes == 10 and model.network.fc.weight.shape == (10, 512)


def test_finetune_head_and_recipe_for_the_rethinking_cnns() -> None:
    from audiobench import load_model
    from audiobench.finetune.head import replace_head
    from audiobench.finetune.recipes import resolve_recipe

    model = load_model("rcnn-resnet18")
    replace_head(model, 5, "multiclass", "esc50")
    assert model.card.num_classes == 5 and model.card.config["head_classes"] == 5
    with torch.no_grad():
        assert model.logits(torch.randn(2, 44100)).shape == (2, 5)
    recipe = resolve_recipe(None, "rethinking-cnn", "esc50")
    assert recipe.name == "rcnn-esc50" and recipe["lr"] == 1e-4 and recipe["weight_decay"] == 1e-3
