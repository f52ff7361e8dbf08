"""Cards of the "Rethinking CNN Models for Audio Classification" baselines (torch-free).

ImageNet DenseNet / ResNet / Inception v3 with the torchvision ImageNet releases, on the 3-channel
multi-resolution log-mel input (:mod:`audiobench.models.multires_logmel`). The eight hex digits in each
torchvision file name start the file's sha256 (torch.hub's check); no full sha256 is published.
"""

from __future__ import annotations

from audiobench.models.cards import CheckpointInfo, ModelCard, ModelSpec

TORCHVISION_RELEASE = "https://download.pytorch.org/models/"
FRONTEND = ("rcnn-multires-logmel (44.1 kHz, n_fft 4410, windows 25/50/100 ms, hops 10/25/50 ms, 128 HTK mels, "
            "log(x + 1e-6), each resized to 128 x 250)")

# name -> (torchvision architecture, embedding size, IMAGENET1K_V1 release file, network options)
RCNN_RELEASES: dict[str, tuple[str, int, str, dict]] = {
    "rcnn-densenet121": ("densenet121", 1024, "densenet121-a639ec97.pth", {}),
    "rcnn-densenet201": ("densenet201", 1920, "densenet201-c1103571.pth", {}),  # the network the RCNN code uses
    "rcnn-resnet18": ("resnet18", 512, "resnet18-f37072fd.pth", {}),
    "rcnn-resnet50": ("resnet50", 2048, "resnet50-0676ba61.pth", {}),  # V1 weights, as the RCNN code used
    # torchvision's pretrained inception_v3 runs with transform_input=True, as the RCNN code did
    "rcnn-inception-v3": ("inception_v3", 2048, "inception_v3_google-0cc3c7bd.pth", {"transform_input": True}),
}


def rcnn_specs() -> list[ModelSpec]:
    """One spec per release in :data:`RCNN_RELEASES`."""
    return [ModelSpec(name=name, target="audiobench.models.rcnn:build_rcnn", card=ModelCard(
        name=name, family="rethinking-cnn",
        description=f"{arch} with torchvision ImageNet weights on the 3-channel multi-resolution log-mel of "
                    "'Rethinking CNN Models for Audio Classification' (fine-tune with --protocol finetune)",
        sample_rate=44100, embedding_dim=dim, config={"arch": arch, "frontend": "esc50", "network_options": options},
        num_classes=None, output_activation="softmax", frontend=FRONTEND,
        checkpoint=CheckpointInfo(file_name=file_name, url=TORCHVISION_RELEASE + file_name,
                                  license="BSD-3-Clause (torchvision)")))
        for name, (arch, dim, file_name, options) in RCNN_RELEASES.items()]
