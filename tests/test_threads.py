"""The thread budget: decoding workers x one thread + compute threads never exceed the cores planned for."""

from __future__ import annotations

import pytest

from audiobench.errors import AudiobenchError
from audiobench.threads import THREADS_ENV, available_cores, budget_cores, plan_threads


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8, 16, 64])
@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("to_decode", [0, 5, 10_000])
def test_workers_plus_threads_fit_the_budget(cores: int, device: str, to_decode: int) -> None:
    plan = plan_threads(device, to_decode, threads=cores)
    assert plan.cores == cores
    assert plan.compute_threads >= 1
    assert plan.workers + plan.compute_threads <= cores


def test_nothing_to_decode_gives_every_core_to_compute() -> None:
    plan = plan_threads("cpu", 0, threads=4)
    assert (plan.workers, plan.compute_threads) == (0, 4)


def test_two_cores_decode_in_process_and_compute_on_both() -> None:
    """The measured case: on two cores any decoding worker costs more than it brings."""
    plan = plan_threads("cpu", 400, threads=2)
    assert (plan.workers, plan.compute_threads) == (0, 2)
    plan = plan_threads("cpu", 400, threads=6)
    assert (plan.workers, plan.compute_threads) == (2, 4)


def test_gpu_plan_decodes_on_the_cores_and_feeds_from_one_thread() -> None:
    plan = plan_threads("cuda", 400, threads=16)
    assert plan.compute_threads == 1 and plan.workers == 8


def test_fixed_workers_leave_the_rest_to_compute() -> None:
    plan = plan_threads("cpu", 400, threads=8, workers=3)
    assert (plan.workers, plan.compute_threads) == (3, 5)


def test_environment_sets_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert budget_cores() == 3
    assert plan_threads("cpu", 0).compute_threads == 3
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(AudiobenchError, match="AUDIOBENCH_THREADS"):
        budget_cores()
    monkeypatch.delenv(THREADS_ENV)
    assert budget_cores() == available_cores() >= 1
    with pytest.raises(AudiobenchError, match="not possible"):
        budget_cores(0)


def test_extraction_restores_torch_threads_and_records_the_plan(tmp_path) -> None:
    import numpy as np
    import soundfile as sf
    import torch

    from audiobench import load_model
    from audiobench.datasets.base import Clip
    from audiobench.embeddings import extract_embeddings

    clips = []
    for i in range(3):
        path = tmp_path / f"c{i}.wav"
        sf.write(path, np.random.default_rng(i).standard_normal(16000).astype(np.float32) * 0.1, 16000)
        clips.append(Clip(clip_id=path.name, path=path, label=0))
    before = torch.get_num_threads()
    _, stats = extract_embeddings(load_model("logmel-stats"), clips, 1.0, threads=2, num_workers=0)
    assert torch.get_num_threads() == before
    assert stats.threads == {"cores": 2, "workers": 0, "compute_threads": 2,
                             "reason": "workers fixed by --num-workers; compute threads get the rest"}
    assert stats.describe()["decoded"] == 3


def test_compute_budget_caps_blas_and_torch_for_a_block() -> None:
    import numpy  # noqa: F401 - loads the BLAS pool threadpoolctl reports
    import torch
    from threadpoolctl import threadpool_info

    from audiobench.threads import compute_budget

    torch.set_num_threads(2)
    with compute_budget(1):
        assert torch.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert torch.get_num_threads() == 2
