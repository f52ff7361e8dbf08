"""End to end on real data: the real mn04 checkpoint on the real ESC-50 clips staged in ../shared.

shared/README.md reports, for these files, a 5-fold stratified CV within fold 4 with standardised
mn04_as embeddings and logistic regression: accuracy ~0.95. The run below uses all 414 staged clips
(fold 4 plus 14 others) with the same probe, through the public runner.
"""

from __future__ import annotations

import pytest

from audiobench.runner import RunOptions, run
from shared_material import ESC50, MN04, require


@pytest.fixture(scope="module")
def esc50_cv_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    require(ESC50 / "meta" / "esc50.csv")
    require(MN04)
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(cache))
        options = RunOptions(task="esc50", model="mn04", data_dir=ESC50, checkpoint=MN04, cv=5,
                             output_dir=tmp_path_factory.mktemp("results"))
        return run(options)[0], run(options)[0]


def test_mn04_linear_probe_reaches_the_reference_accuracy(esc50_cv_runs: tuple[dict, dict]) -> None:
    first, _ = esc50_cv_runs
    accuracy = first["metrics"]["accuracy"]
    assert 0.93 <= accuracy["mean"] <= 0.97
    assert len(accuracy["per_split"]) == 5
    assert first["protocol"]["official"] is False and "NON-OFFICIAL" in first["protocol"]["splits"]
    assert first["dataset"]["clips"] == 414 and first["dataset"]["expected_clips"] == 2000


def test_second_run_reuses_every_embedding_and_gives_the_same_number(esc50_cv_runs: tuple[dict, dict]) -> None:
    first, second = esc50_cv_runs
    assert first["embeddings"]["computed"] == 414 and second["embeddings"]["computed"] == 0
    assert second["metrics"] == first["metrics"]
    assert second["model"]["checkpoint_sha256"] == first["model"]["checkpoint_sha256"]
