"""Fine-tuning pieces: augmentations, losses, schedules and distillation of the published recipes.

One small module per building block, each usable alone:

- ``schedules``: EfficientAT/PaSST ``exp_warmup_linear_down`` (per epoch) and cosine with linear warm-up (per step).
- ``layer_decay``: layer-wise learning-rate decay parameter groups (EfficientAT MobileNet key layout included).
- ``mixup``: spectrogram mixup with folded Beta weights, mixed targets and mixed cross-entropy.
- ``waveform_augment``: per-example time roll, random gain and waveform mixing ("wavmix").
- ``spec_masking``: SpecAugment-style frequency / time masks, one per example.
- ``sampling``: class-balanced sampling of multi-label clips (EfficientAT/PaSST AudioSet weights).
- ``freq_mixstyle``, ``device_ir``, ``distillation``, ``losses``, ``patchout``: the remaining recipe pieces.

All random draws take an optional ``torch.Generator`` so runs are reproducible.
"""
