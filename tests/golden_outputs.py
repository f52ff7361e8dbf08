"""Golden outputs that tie each model's output to its derived implementation version.

``tests/golden/implementation_versions.json`` stores, per model, the code version audiobench derives
(:meth:`AudioModel.code_version`, and for the audio pipeline ``implementation_version(PIPELINE_MODULES)``)
together with a few output values on a fixed input. ``test_cache_identity.py`` fails when an output
changes while its version stays the same (the version derivation missed some code), and when the code
changed without the golden file being renewed. Renew it after a deliberate change with::

    .venv/bin/python tests/golden_outputs.py --update
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).with_name("golden") / "implementation_versions.json"
MODELS = ("logmel-stats", "mn04", "dymn04", "cpmobile")
VALUES = 16  # output values kept per model


def model_output(name: str) -> tuple[str, list[float]]:
    """(code version, first output values) of model ``name`` with seeded random weights on a fixed input."""
    import torch

    from audiobench import load_model

    torch.manual_seed(0)
    model = load_model(name)
    seconds = 1.0
    t = torch.arange(int(model.sample_rate * seconds), dtype=torch.float64) / model.sample_rate
    waveform = (0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.1 * torch.sin(2 * torch.pi * 3000 * t)).float()
    with torch.inference_mode():
        embedding = model.embed(waveform.unsqueeze(0))[0]
    return model.code_version(), [float(v) for v in embedding[:VALUES]]


def pipeline_output(directory: Path) -> tuple[str, list[float]]:
    """(pipeline version, first values) of ``load_audio`` -> logmel-stats through ``extract_embeddings``."""
    import soundfile as sf

    from audiobench import load_model
    from audiobench.code_version import implementation_version
    from audiobench.datasets.base import Clip
    from audiobench.embeddings import PIPELINE_MODULES, extract_embeddings

    rate = 22050
    t = np.arange(int(rate * 1.3)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 330 * t), 0.5 * np.sin(2 * np.pi * 5000 * t)], axis=1) * 0.4
    path = directory / "golden.wav"
    sf.write(path, stereo, rate, subtype="PCM_16")
    model = load_model("logmel-stats")
    clips = [Clip(clip_id=path.name, path=path, label=0)]
    embeddings, _ = extract_embeddings(model, clips, 1.0, None, batch_size=1, num_workers=0)
    return implementation_version(PIPELINE_MODULES), [float(v) for v in embeddings[0][:VALUES]]


def current(directory: Path) -> dict[str, dict[str, object]]:
    """Versions and outputs as the code computes them now."""
    result = {}
    for name in MODELS:
        version, values = model_output(name)
        result[name] = {"version": version, "values": values}
    version, values = pipeline_output(directory)
    result["audio-pipeline"] = {"version": version, "values": values}
    return result


if __name__ == "__main__":
    if "--update" not in sys.argv:
        sys.exit("usage: python tests/golden_outputs.py --update")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(current(Path(tmp)), indent=1) + "\n")
    print(f"wrote {GOLDEN}")
