"""TAU22 / DCASE23 task 1: loader on a generated copy of the official layout, split lists, card, scores."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiobench.datasets.base import list_sha256
from audiobench.datasets.tau22 import device_of, load_tau22
from audiobench.report.derived import budget_verdict, device_spread
from audiobench.datasets.tau22_splits import SPLIT_ROWS, SPLIT_SHA256, TEST_CLIPS, TEST_CSV_SHA256
from audiobench.errors import DatasetError
from audiobench.labels import TAU22_SCENES
from audiobench.tasks import get_task
from shared_material import SHARED

SR = 44_100
DEVICES = ("a", "b", "s1", "s4")
SPLIT_SETUP = SHARED / "data" / "tau22" / "split_setup"


def _name(scene: str, segment: int, device: str) -> str:
    return f"audio/{scene}-lyon-{100 + segment}-{4000 + segment}-0-{device}.wav"


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def make_tau22(root: Path, segments: int = 3, seconds: float = 1.0) -> dict[str, list[str]]:
    """10 scenes x devices a, b, s1, s4 x ``segments`` clips; s4 and the last segment go to the test list."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    meta, train, test = [], [], []
    for index, scene in enumerate(TAU22_SCENES):
        for segment in range(segments):
            for device in DEVICES:
                name = _name(scene, segment, device)
                t = np.arange(int(SR * seconds)) / SR
                tone = 0.3 * np.sin(2 * np.pi * (150 + 120 * index) * t) + 0.02 * rng.standard_normal(t.size)
                sf.write(root / name, tone.astype(np.float32), SR, subtype="PCM_24")
                meta.append([name, scene, f"lyon-{100 + segment}", device])
                is_test = device == "s4" or segment == segments - 1
                (test if is_test else train).append([name, scene])
    _write_tsv(root / "meta.csv", ["filename", "scene_label", "identifier", "source_label"], meta)
    _write_tsv(root / "evaluation_setup" / "fold1_train.csv", ["filename", "scene_label"], train)
    _write_tsv(root / "evaluation_setup" / "fold1_evaluate.csv", ["filename", "scene_label"], test)
    _write_tsv(root / "evaluation_setup" / "fold1_test.csv", ["filename"], [[row[0]] for row in test])
    return {"train": [r[0] for r in train], "test": [r[0] for r in test]}


def test_index_splits_groups_and_coverage(tmp_path: Path) -> None:
    lists = make_tau22(tmp_path)
    index = load_tau22(tmp_path)
    assert index.classes == list(TAU22_SCENES) and index.clip_seconds == 1.0
    assert len(index.clips) == len(lists["train"]) + len(lists["test"]) == 120
    by_id = {clip.clip_id: clip for clip in index.clips}
    assert {by_id[name].split for name in lists["train"]} == {"train"}
    assert {by_id[name].split for name in lists["test"]} == {"test"}
    assert set(index.groups().tolist()) == set(DEVICES)
    assert all(clip.split == "test" for clip in index.clips if clip.group == "s4")  # unseen device: test only
    assert by_id[_name("tram", 0, "s1")].label == TAU22_SCENES.index("tram")
    coverage = index.coverage()
    assert not coverage.official and not coverage.missing  # a generated copy is never the official list
    assert "official list has 169300" in coverage.summary()


def test_missing_audio_is_coverage_not_error(tmp_path: Path) -> None:
    make_tau22(tmp_path)
    gone = _name("park", 0, "b")
    (tmp_path / gone).unlink()
    index = load_tau22(tmp_path)
    assert index.missing == [gone] and len(index.clips) == 119
    assert "1 listed clip(s) have no audio file" in index.coverage().summary()


def test_unpacked_archive_folder_is_found(tmp_path: Path) -> None:
    make_tau22(tmp_path / "TAU-urban-acoustic-scenes-2022-mobile-development")
    assert len(load_tau22(tmp_path).clips) == 120


def _rewrite(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new, 1))


def test_unknown_scene_names_file_row_column(tmp_path: Path) -> None:
    make_tau22(tmp_path)
    _rewrite(tmp_path / "meta.csv", "\tairport\t", "\tairprot\t")
    with pytest.raises(DatasetError, match=r"meta.csv, row 2, column 'scene_label': unknown scene 'airprot'"):
        load_tau22(tmp_path)


def test_bad_device_suffix(tmp_path: Path) -> None:
    make_tau22(tmp_path)
    _rewrite(tmp_path / "meta.csv", "-0-b.wav", "-0-z9.wav")
    with pytest.raises(DatasetError, match=r"meta.csv, row 3, column 'filename'.*device suffix \(got 'z9'\)"):
        load_tau22(tmp_path)


def test_source_label_must_match_suffix(tmp_path: Path) -> None:
    make_tau22(tmp_path)
    _rewrite(tmp_path / "meta.csv", "\tlyon-100\ta\n", "\tlyon-100\tc\n")
    with pytest.raises(DatasetError, match=r"row 2, column 'source_label'"):
        load_tau22(tmp_path)


def test_list_naming_a_file_absent_from_meta(tmp_path: Path) -> None:
    make_tau22(tmp_path)
    listed = tmp_path / "evaluation_setup" / "fold1_evaluate.csv"
    with open(listed, "a") as handle:
        handle.write("audio/ghost-paris-1-1-0-a.wav\tairport\n")
    rows = len(listed.read_text().splitlines())
    with pytest.raises(DatasetError, match=rf"fold1_evaluate.csv, row {rows}, column 'filename'.*not listed in"):
        load_tau22(tmp_path)


def test_clip_in_train_and_test_is_refused(tmp_path: Path) -> None:
    lists = make_tau22(tmp_path)
    with open(tmp_path / "evaluation_setup" / "fold1_evaluate.csv", "a") as handle:
        handle.write(f"{lists['train'][0]}\tairport\n")
    with pytest.raises(DatasetError, match="list the same clip"):
        load_tau22(tmp_path)


def test_split_csv_setup_and_where_to_put_the_lists(tmp_path: Path) -> None:
    lists = make_tau22(tmp_path)
    with pytest.raises(DatasetError, match="split25.csv and test.csv not found") as error:
        load_tau22(tmp_path, split="25")
    assert "dcase2024_task1_baseline/releases/download/files/split25.csv" in error.value.hint
    _write_tsv(tmp_path / "split_setup" / "split25.csv", ["filename", "scene_label"],
               [[name, name.split("/")[1].split("-")[0]] for name in lists["train"][:10]])
    _write_tsv(tmp_path / "test.csv", ["filename", "scene_label"],  # the root is searched too
               [[name, name.split("/")[1].split("-")[0]] for name in lists["test"]])
    index = load_tau22(tmp_path, split=25)
    assert sum(clip.split == "train" for clip in index.clips) == 10
    coverage = index.coverage()
    assert not coverage.official and "not the official list of 64580" in coverage.summary()
    with pytest.raises(DatasetError, match="unknown split '30'"):
        load_tau22(tmp_path, split="30")


def test_missing_dataset_says_where_to_download(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="meta.csv not found") as error:
        load_tau22(tmp_path)
    assert "zenodo.org/record/6337421" in error.value.hint
    with pytest.raises(DatasetError, match="--download is not supported"):
        load_tau22(None, download=True)


def test_card() -> None:
    card = get_task("tau22")
    assert card.dataset == "tau22" and card.split_names("train") == ["train"] and card.split_names("test") == ["test"]
    assert card.all_metrics == ["accuracy", "class-macro-accuracy"] and card.clip_seconds == 1.0
    assert card.groups["unseen"] == ["s4", "s5", "s6"]
    assert card.complexity_budget["max_params"] == 128_000


def test_end_to_end_with_device_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from audiobench import provenance
    from audiobench.report.rescore import rescore
    from audiobench.runner import RunOptions, run

    monkeypatch.setattr(provenance, "git_revision", lambda: None)
    make_tau22(tmp_path / "data", seconds=0.5)  # short clips: padded to the card's 1 s by the pipeline
    record, path = run(RunOptions(task="tau22", model="logmel-stats", data_dir=tmp_path / "data", device="cpu",
                                  num_workers=0, output_dir=tmp_path / "out"))
    assert record["protocol"]["official"] is False and record["dataset"]["clips"] == 120
    metrics = record["metrics"]
    for key in ("accuracy", "class-macro-accuracy", "accuracy@group=s4", "accuracy@group=a", "accuracy@unseen",
                "accuracy@real", "accuracy@seen_simulated", "class-macro-accuracy@group=b"):
        assert 0.0 <= metrics[key]["mean"] <= 1.0, key
    assert "accuracy@group=c" not in metrics  # no device-c clips in this copy
    assert record["groups"]["unseen"] == ["s4", "s5", "s6"]
    assert rescore(path)["identical"] is True
    spread = device_spread(metrics)
    assert set(spread["devices"]) == set(DEVICES) and not spread["complete"]
    values = [metrics[f"accuracy@group={d}"]["mean"] for d in DEVICES]
    assert spread["std"] == pytest.approx(float(np.std(values)))


def test_budget_verdict() -> None:
    budget = {"max_params": 128_000, "max_macs_per_second": 30_000_000, "source": "DCASE23"}
    small = {"params": {"total": 126_952}, "macs": {"total": 29_000_000, "per_second": 29_000_000.0},
             "input": {"seconds": 1.0}}
    verdict = budget_verdict(small, budget)
    assert verdict["within"] is True and verdict["params_within"] and verdict["macs_per_second_within"]
    ten_seconds = {"params": {"total": 126_952}, "macs": {"total": 310_000_000}, "input": {"seconds": 10.0}}
    verdict = budget_verdict(ten_seconds, budget)
    assert verdict["macs_per_second"] == 31_000_000 and verdict["within"] is False
    assert budget_verdict({"params": {"total": 10}}, budget)["within"] is None  # unknown MACs never pass


def test_device_spread_matches_dir_table() -> None:
    # DIR table (published.yaml r0198, CP-ResNet): nine device accuracies, DG 7.73 (mean of 3 runs' DG)
    accuracies = {"a": 70.76, "b": 63.2, "c": 63.25, "s1": 56.47, "s2": 52.62, "s3": 57.57, "s4": 51.52,
                  "s5": 48.67, "s6": 44.66}
    metrics = {f"accuracy@group={d}": {"mean": v, "per_split": {"test": v}} for d, v in accuracies.items()}
    spread = device_spread(metrics, split="test")
    assert spread["complete"] and spread["std"] == pytest.approx(7.73, abs=0.02)


def test_device_of() -> None:
    assert device_of("audio/airport-lisbon-1000-40000-0-s4.wav") == "s4"
    assert device_of("nodash.wav") == ""


def _real_rows(name: str) -> list[tuple[str, int, str]]:
    path = SPLIT_SETUP / name
    if not path.is_file():
        pytest.skip(f"shared TAU22 split list not found: {path}")
    from audiobench.datasets.table import read_table

    role = "test" if name == "test.csv" else "train"
    return [(row.text("filename"), TAU22_SCENES.index(row.text("scene_label")), role)
            for row in read_table(path, ("filename", "scene_label"), delimiter="\t")]


def test_real_split_lists_parse_and_match_pinned_identity() -> None:
    test = _real_rows("test.csv")
    assert len(test) == TEST_CLIPS == 29_680
    devices = {}
    for name, _, _ in test:
        devices[device_of(name)] = devices.get(device_of(name), 0) + 1
    assert devices == {"a": 3300, "b": 3290, "c": 3290, **{f"s{i}": 3300 for i in range(1, 7)}}
    assert list_sha256(test) == TEST_CSV_SHA256
    test_names = {name for name, _, _ in test}
    for n, rows in SPLIT_ROWS.items():
        train = _real_rows(f"split{n}.csv")
        assert len(train) == rows and not test_names & {name for name, _, _ in train}
        assert {device_of(name) for name, _, _ in train} == {"a", "b", "c", "s1", "s2", "s3"}  # s4-s6 unseen
        assert list_sha256(train + test) == SPLIT_SHA256[n]
    assert len(_real_rows("split25.csv")) == 34_900


def test_real_split_lists_load_as_official_identity(tmp_path: Path) -> None:
    """meta.csv built from the real split25 + test lists, no audio: the listed identity is the official one."""
    train, test = _real_rows("split25.csv"), _real_rows("test.csv")
    rows = [[name, TAU22_SCENES[label], "x-1", device_of(name)] for name, label, _ in train + test]
    _write_tsv(tmp_path / "meta.csv", ["filename", "scene_label", "identifier", "source_label"], rows)
    (tmp_path / "split_setup").mkdir()
    for name in ("split25.csv", "test.csv"):
        (tmp_path / "split_setup" / name).write_bytes((SPLIT_SETUP / name).read_bytes())
    index = load_tau22(tmp_path, split="25")
    assert index.listed_sha256 == SPLIT_SHA256["25"] and len(index.missing) == 34_900 + 29_680
    coverage = index.coverage()
    assert coverage.reasons == ["64580 listed clip(s) have no audio file"]
