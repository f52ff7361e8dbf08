"""``audiobench sweep``: the grid, which record belongs to a configuration, in-process and Ray executors, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

from audiobench.cli import app
from audiobench.errors import AudiobenchError, DatasetError
from audiobench.resources import data_dir
from audiobench.runner import RunOptions
from audiobench.code_version import input_pipeline_changed, model_code_changed, protocol_version
from audiobench.sweep import InProcessExecutor, RayExecutor, build_grid, find_existing, run_config, sweep

# Both need no weights: logmel-stats (the catalog's only such model) and a HEAR module written here (cheaper than
# hear:audiobench.hear.logmel_stats, whose complexity count alone takes seconds).
MODELS = ["logmel-stats", "hear:sweep_test_stats"]
TASKS = ["synthetic", "synthetic-b"]  # synthetic-b: the synthetic card under another name
HEAR_MODULE = '''"""A HEAR module without weights: four statistics of the waveform."""
import torch


class Model:
    sample_rate = 16000
    scene_embedding_size = timestamp_embedding_size = 4


def load_model(model_file_path=""):
    return Model()


def _stats(audio):
    return torch.stack([audio.mean(-1), audio.std(-1), audio.abs().amax(-1), (audio[..., 1:] * audio[..., :-1]).mean(-1)], -1)


def get_scene_embeddings(audio, model):
    return _stats(audio)


def get_timestamp_embeddings(audio, model):
    frames = audio.unfold(1, 1600, 1600)
    return _stats(frames), torch.arange(frames.shape[1]).float().expand(audio.shape[0], -1) * 100 + 50
'''


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list]]:
    """A real 2 tasks x 2 models sweep in this process: (output dir, outcomes); its task card and HEAR module
    stay available to the module's tests."""
    root = tmp_path_factory.mktemp("sweep")
    (root / "modules").mkdir()
    (root / "modules" / "sweep_test_stats.py").write_text(HEAR_MODULE)
    (root / "tasks").mkdir()
    text = (data_dir("tasks") / "synthetic.yaml").read_text()
    (root / "tasks" / "synthetic-b.yaml").write_text(text.replace("name: synthetic", "name: synthetic-b"))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(root / "modules"))
        patch.setenv("AUDIOBENCH_TASKS_PATH", str(root / "tasks"))
        patch.setenv("AUDIOBENCH_CACHE", str(root / "cache"))
        configs = build_grid(TASKS, MODELS, output_dir=root / "results", device="cpu", num_workers=0)
        yield root, sweep(configs, InProcessExecutor())


def test_grid_is_task_by_model_with_per_name_paths() -> None:
    grid = build_grid(["a", "b", "a"], ["x", "y"], data_dirs={"b": Path("/data/b")},
                      checkpoints={"y": Path("y.pt")}, seed=3, cv=2, dataset_options={"split": 25})
    assert [(c.task, c.model) for c in grid] == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert [c.data_dir for c in grid] == [None, None, Path("/data/b"), Path("/data/b")]
    assert [c.checkpoint for c in grid] == [None, Path("y.pt")] * 2
    assert {(c.seed, c.cv) for c in grid} == {(3, 2)}
    grid[0].dataset_options["split"] = 1  # each configuration owns its options
    assert grid[1].dataset_options == {"split": 25}
    with pytest.raises(AudiobenchError, match="--data-dir-for names esc5"):
        build_grid(["esc50"], ["x"], data_dirs={"esc5": Path("d")})
    with pytest.raises(AudiobenchError, match="no model"):
        build_grid(["esc50"], [])


def test_sweep_writes_every_record_and_a_second_sweep_skips_all(swept: tuple[Path, list]) -> None:
    root, outcomes = swept
    assert [o.status for o in outcomes] == ["done"] * 4, [o.reason for o in outcomes]
    files = sorted(p.name for p in (root / "results").iterdir())
    assert len(files) == 8 and sum(name.endswith(".predictions.npz") for name in files) == 4
    records = [json.loads(o.record.read_text()) for o in outcomes]
    assert [(r["task"]["name"], r["model"]["name"]) for r in records] == [(t, m) for t in TASKS for m in MODELS]
    before = {p: p.stat().st_mtime_ns for p in (root / "results").iterdir()}

    def must_not_run(config: RunOptions) -> Path:
        raise AssertionError(f"recomputed {config.task} / {config.model}")

    configs = build_grid(TASKS, MODELS, output_dir=root / "results", batch_size=5, device="cpu")
    again = sweep(configs, InProcessExecutor(), must_not_run)
    assert [o.status for o in again] == ["skipped"] * 4
    assert [o.record for o in again] == [o.record for o in outcomes]
    assert {p: p.stat().st_mtime_ns for p in (root / "results").iterdir()} == before


def test_a_record_matches_only_its_own_configuration(swept: tuple[Path, list], tmp_path: Path) -> None:
    root, outcomes = swept
    config = outcomes[0].config  # synthetic / logmel-stats
    assert find_existing(config) == outcomes[0].record
    # where the data is and how it is computed does not change what is measured
    assert find_existing(dataclasses.replace(config, data_dir=tmp_path, batch_size=3, num_workers=2)) is not None
    for different in ({"seed": 1}, {"cv": 2}, {"protocol": "mlp-probe"}, {"dataset_options": {"seed": 1}},
                      {"checkpoint": Path("weights.pt")}):
        assert find_existing(dataclasses.replace(config, **different)) is None, different
    assert find_existing(config, tmp_path / "nowhere") is None

    record = json.loads(outcomes[0].record.read_text())
    predictions = outcomes[0].record.with_name(record["predictions"]["file"])
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"not really weights")
    variants = {  # name: (record changes, configuration that finds it)
        "cv.json": ({"protocol": {**record["protocol"], "official": False, "splits":
                                  "NON-OFFICIAL: stratified 2-fold cross-validation (seed 0) over the 120 clips"}},
                    dataclasses.replace(config, cv=2)),
        "weights.json": ({"model": {**record["model"], "checkpoint_file": "weights.pt",
                                    "checkpoint_sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}},
                         dataclasses.replace(config, checkpoint=weights)),
        "probe_c.json": ({"protocol": {**record["protocol"], "C": 10.0}},
                         dataclasses.replace(config, probe_options={"C": 10.0})),
    }
    for name, (changes, finder) in variants.items():
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        shutil.copy(predictions, folder / predictions.name)
        (folder / name).write_text(json.dumps({**record, **changes}))
        assert find_existing(finder, folder) == folder / name, name
        assert find_existing(config, folder) is None, name  # the default configuration is another one
        assert find_existing(dataclasses.replace(finder, cv=3), folder) is None, name
    (tmp_path / "bf16").mkdir()
    shutil.copy(predictions, tmp_path / "bf16" / predictions.name)
    (tmp_path / "bf16" / "r.json").write_text(json.dumps({**record, "embeddings": {"precision": "bf16"}}))
    assert find_existing(config, tmp_path / "bf16") is None
    (tmp_path / "unstated").mkdir()  # records before --precision (and event records before 2026-12-07): fp32
    shutil.copy(predictions, tmp_path / "unstated" / predictions.name)
    (tmp_path / "unstated" / "r.json").write_text(json.dumps({**record, "embeddings": {}}))
    assert find_existing(config, tmp_path / "unstated") is not None
    assert find_existing(dataclasses.replace(config, precision="bf16"), tmp_path / "unstated") is None
    assert record["protocol"]["implementation"] == protocol_version("linear-probe")
    unversioned = {key: value for key, value in record["protocol"].items() if key != "implementation"}
    for name, block in {"older_code": {**record["protocol"], "implementation": "0123456789abcdef"},
                        "before_versions": unversioned}.items():
        (tmp_path / name).mkdir()  # made by other probe code (e.g. the early-stopped solver): run again
        shutil.copy(predictions, tmp_path / name / predictions.name)
        (tmp_path / name / "r.json").write_text(json.dumps({**record, "protocol": block}))
        assert find_existing(config, tmp_path / name) is None, name
    assert record["model"]["code_roots"] and model_code_changed(record["model"]) is False
    older_model = {**record["model"], "fingerprint": {**record["model"]["fingerprint"], "implementation": "0" * 16}}
    for name, block, found in (("older_model_code", older_model, False),  # made by other model code: run again
                               ("no_code_roots", {k: v for k, v in older_model.items() if k != "code_roots"}, True)):
        (tmp_path / name).mkdir()  # a record that does not name its model code cannot be compared: kept
        shutil.copy(predictions, tmp_path / name / predictions.name)
        (tmp_path / name / "r.json").write_text(json.dumps({**record, "model": block}))
        assert (find_existing(config, tmp_path / name) is not None) is found, name
    assert record["input_pipeline"]["implementation"] and input_pipeline_changed(record) is False
    older_input = {**record["input_pipeline"], "implementation": "0" * 16}
    for name, changes, found in (("older_input_code", {"input_pipeline": older_input}, False),  # run again
                                 ("no_input_block", None, True)):  # records before the block: kept
        (tmp_path / name).mkdir()
        shutil.copy(predictions, tmp_path / name / predictions.name)
        doctored = ({**record, **changes} if changes else
                    {key: value for key, value in record.items() if key != "input_pipeline"})
        (tmp_path / name / "r.json").write_text(json.dumps(doctored))
        assert (find_existing(config, tmp_path / name) is not None) is found, name
    (tmp_path / "cv" / predictions.name).unlink()  # a record without its predictions file is not kept
    assert find_existing(dataclasses.replace(config, cv=2), tmp_path / "cv") is None


def test_a_failing_configuration_is_reported_and_the_others_finish(tmp_path: Path) -> None:
    ran: list[str] = []

    def run_one(config: RunOptions) -> Path:
        ran.append(config.model)
        if config.model == "mn04":
            raise DatasetError("No clips under /data/x.", hint="Pass --data-dir-for.")
        if config.seed == 7:
            raise RuntimeError("a bug")
        return tmp_path / f"{config.model}.json"

    configs = build_grid(["synthetic", "no-such-task"], ["logmel-stats", "mn04"], output_dir=tmp_path)
    configs.append(dataclasses.replace(configs[0], seed=7))
    outcomes = sweep(configs, InProcessExecutor(), run_one)
    assert [o.status for o in outcomes] == ["done", "failed", "failed", "failed", "failed"]
    assert ran == ["logmel-stats", "mn04", "logmel-stats"]  # an unknown task is not run
    assert outcomes[1].reason == "No clips under /data/x." and outcomes[1].hint == "Pass --data-dir-for."
    assert "Unknown task 'no-such-task'" in outcomes[2].reason
    assert outcomes[4].reason == "Unexpected RuntimeError: a bug"


def _invoke(*args: object) -> object:
    return CliRunner().invoke(app, ["sweep", *map(str, args)])


def test_cli_skips_recorded_reports_failed_and_writes_the_leaderboard(swept: tuple[Path, list], tmp_path: Path
                                                                      ) -> None:
    root, _ = swept
    result = _invoke("--tasks", "synthetic,synthetic-b", "--tasks", "esc50", "--models", ",".join(MODELS),
                     "--output-dir", root / "results", "--leaderboard-dir", tmp_path / "boards", "--device", "cpu",
                     "--json")
    assert result.exit_code == 1, result.output  # esc50 has no data here
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": 0, "skipped": 4, "failed": 2}
    failed = [o for o in summary["outcomes"] if o["status"] == "failed"]
    assert {o["task"] for o in failed} == {"esc50"} and all(o["reason"] and o["hint"] for o in failed)
    assert (tmp_path / "boards" / "synthetic.md").is_file() and (tmp_path / "boards" / "index.html").is_file()
    assert len(list((root / "results").glob("*.json"))) == 4

    table = _invoke("--tasks", "synthetic", "--models", "logmel-stats", "--output-dir", root / "results",
                    "--no-leaderboard")
    assert table.exit_code == 0, table.output
    assert "skipped" in table.stdout and "1 skipped" in table.stdout


def test_cli_ray_errors_are_one_line_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    result = _invoke("--tasks", "synthetic", "--models", "logmel-stats", "--ray", "-o", tmp_path)
    assert result.exit_code == 2 and "pip install 'efficient-audiobench[ray]'" in result.output
    assert "Traceback" not in result.output and not list(tmp_path.iterdir())
    result = _invoke("--tasks", "synthetic", "--models", "logmel-stats", "localhost:6379")
    assert result.exit_code == 2 and "--ray localhost:6379" in result.output
    result = _invoke("--tasks", "synthetic", "--models", "logmel-stats", "--checkpoint-for", "mn04")
    assert result.exit_code == 2 and "--checkpoint-for needs NAME=PATH" in result.output


# -- Ray ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A local two-CPU Ray cluster whose workers use a temporary cache and can unpickle this module's functions."""
    ray = pytest.importorskip("ray")
    cache = tmp_path_factory.mktemp("ray-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"AUDIOBENCH_CACHE": str(cache)}})
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


class KillFirstAttempt:
    """``run_one`` whose first attempt of each configuration kills its own worker process (os._exit), with seed 0
    before the record is written and otherwise after it; later attempts run for real."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, config: RunOptions) -> Path:
        marker = self.folder / f"attempted-{config.task}-{config.seed}"
        if marker.exists():
            return run_config(config)
        marker.write_text(str(os.getpid()))
        if config.seed != 0:
            run_config(config)
        os._exit(1)


def test_ray_sweep_survives_killed_workers_and_reports_a_failure(ray_cluster: object, tmp_path: Path) -> None:
    output = tmp_path / "results"
    configs = build_grid(["synthetic"], ["logmel-stats"], output_dir=output, device="cpu")
    configs += [dataclasses.replace(configs[0], seed=1), dataclasses.replace(configs[0], task="esc50")]
    outcomes = sweep(configs, RayExecutor(max_retries=2), KillFirstAttempt(tmp_path))
    assert [o.status for o in outcomes] == ["done", "skipped", "failed"], [o.reason for o in outcomes]
    assert outcomes[1].reason.startswith("record synthetic__logmel-stats") and "ESC-50" in outcomes[2].reason
    assert {p.name for p in tmp_path.glob("attempted-*")} == {"attempted-synthetic-0", "attempted-synthetic-1",
                                                               "attempted-esc50-0"}
    names = sorted(p.name for p in output.iterdir())  # hidden temporary files included
    records = [name for name in names if name.endswith(".json")]
    assert len(names) == 4 and len(records) == 2, names  # each record once, with its predictions file, nothing else
    assert sorted(json.loads((output / name).read_text())["provenance"]["seed"] for name in records) == [0, 1]
    for name in records:
        assert (output / json.loads((output / name).read_text())["predictions"]["file"]).is_file()
    assert ray_cluster.is_initialized()  # a connection made by the caller stays open


class ThreadsSeen:
    """``run_one`` writing the threads its worker may use to a file (a stand-in for a record)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __call__(self, config: RunOptions) -> Path:
        import torch

        path = self.folder / f"{config.task}.json"
        path.write_text(json.dumps({"omp": os.environ.get("OMP_NUM_THREADS"), "torch": torch.get_num_threads()}))
        return path


def test_ray_tasks_use_as_many_threads_as_cpus_reserved(ray_cluster: object, tmp_path: Path) -> None:
    configs = build_grid(["synthetic"], ["logmel-stats"], output_dir=tmp_path)
    outcomes = RayExecutor(cpus_per_task=2).execute(configs, ThreadsSeen(tmp_path))
    assert [o.status for o in outcomes] == ["done"], outcomes[0].reason
    assert json.loads(outcomes[0].record.read_text()) == {"omp": "2", "torch": 2}


def test_cli_ray_runs_on_the_connected_cluster(ray_cluster: object, tmp_path: Path) -> None:
    result = _invoke("--tasks", "synthetic", "--models", "logmel-stats", "--ray", "-o", tmp_path / "results",
                     "--leaderboard-dir", tmp_path / "boards", "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"] == {"done": 1, "skipped": 0, "failed": 0}
    assert (tmp_path / "boards" / "synthetic.md").is_file()
