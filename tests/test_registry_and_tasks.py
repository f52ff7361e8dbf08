"""Registries (built-ins and entry-point plugins), task cards, and the torch-free `list` command."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from audiobench.errors import AudiobenchError, UnknownNameError
from audiobench.registry import DATASETS, METRICS, MODELS, PROTOCOLS, Registry
from audiobench.tasks import get_task, load_task_cards

# --------------------------------------------------------------------------- built-in registries


def test_builtin_names() -> None:
    assert {"mn01", "mn04", "mn10", "mn40", "logmel-stats"} <= set(MODELS.names())
    assert {"esc50", "synthetic"} <= set(DATASETS.names())
    assert "linear-probe" in PROTOCOLS and {"accuracy", "mAP"} <= set(METRICS.names())
    assert MODELS.entry("mn04").info.checkpoint.file_name == "mn04_as_mAP_432.pt"


@pytest.mark.parametrize("registry, known", [(MODELS, "mn04"), (DATASETS, "esc50"), (METRICS, "accuracy")])
def test_unknown_name_lists_known_names(registry, known) -> None:
    with pytest.raises(UnknownNameError, match="no-such-thing") as info:
        registry.entry("no-such-thing")
    assert known in info.value.hint
    assert f"audiobench list {registry.kind}s" in info.value.hint


def test_unknown_task_lists_known_tasks() -> None:
    with pytest.raises(UnknownNameError, match="no-such-task") as info:
        get_task("no-such-task")
    assert "esc50" in info.value.hint and "synthetic" in info.value.hint


def test_registering_a_name_twice_is_refused() -> None:
    registry: Registry = Registry("widget", "audiobench.test-widgets-none")
    registry.register("a", "math:sqrt")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", "math:floor")
    assert registry.get("a")(16) == 4.0


# --------------------------------------------------------------------------- entry-point plugins

PLUGIN_MODULE = '''
from audiobench.models.cards import ModelCard, ModelSpec

CARD = ModelCard(name="toy-model", family="toy", description="third-party test model",
                 sample_rate=32000, embedding_dim=256, frontend="efficientat-mel128")
SPEC = ModelSpec(name="toy-model", target="{module}:build", card=CARD)


def build(card):
    from audiobench.models.baselines import LogMelStats
    return LogMelStats(card)
'''


def make_plugin(site: Path, module: str, dist: str, entry_points: str, body: str | None = None) -> None:
    """A minimal installed distribution: ``<dist>-1.0.dist-info`` with METADATA and entry_points.txt."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(body if body is not None else PLUGIN_MODULE.format(module=module))
    info = site / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A temporary site directory on sys.path; modules imported from it are forgotten afterwards."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        if name.startswith("abtest_"):
            del sys.modules[name]


def test_plugin_model_spec_is_registered(plugin_site) -> None:
    make_plugin(plugin_site, "abtest_plugin", "abtest-plugin", """
        [audiobench.models]
        toy-model = abtest_plugin:SPEC
        toy-callable = abtest_plugin:build
        """)
    registry: Registry = Registry("model", "audiobench.models")
    assert registry.names() == ["toy-callable", "toy-model"]
    entry = registry.entry("toy-model")
    assert entry.source == "abtest-plugin"
    assert entry.info.family == "toy" and entry.info.embedding_dim == 256
    assert isinstance(entry.target, str)  # still lazy
    model = entry.load()(entry.info)
    assert type(model).__name__ == "LogMelStats" and model.embedding_dim == 256
    callable_entry = registry.entry("toy-callable")
    assert callable_entry.info is None and callable(callable_entry.target)


def test_plugins_of_other_groups_are_ignored(plugin_site) -> None:
    make_plugin(plugin_site, "abtest_other", "abtest-other", """
        [audiobench.metrics]
        toy-metric = abtest_other:build
        """)
    assert "toy-metric" not in Registry("model", "audiobench.models").names()
    assert Registry("metric", "audiobench.metrics").names() == ["toy-metric"]


BROKEN_PLUGINS = {
    "import-error": ("abtest_broken", "raise ImportError('abtest_broken needs a package that is missing')\n"),
    "shadows-a-builtin": ("abtest_shadow", PLUGIN_MODULE.format(module="abtest_shadow").replace(
        'ModelSpec(name="toy-model"', 'ModelSpec(name="mn04"')),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PLUGINS))
def test_broken_plugin_is_reported_consistently(plugin_site, case) -> None:
    module, body = BROKEN_PLUGINS[case]
    make_plugin(plugin_site, module, "abtest-broken", f"""
        [audiobench.models]
        broken = {module}:SPEC
        """, body=body)
    registry: Registry = Registry("model", "audiobench.models")
    registry.register("mn04", "audiobench.models.mel_adapter:build_mobilenet")

    def outcome() -> tuple[str, object]:
        try:
            return "ok", registry.names()
        except AudiobenchError as error:
            return "explained", str(error)
        except Exception as error:  # noqa: BLE001
            return "raw", type(error).__name__

    first, second = outcome(), outcome()
    assert first[0] == "explained", f"plugin failure is not explained: {first}"
    assert first == second


# --------------------------------------------------------------------------- task cards

CARD = """\
name: {name}
description: a test task
dataset: synthetic
label_type: multiclass
clip_seconds: 1.0
splits:
  type: folds
  folds: [1, 2, 3, 4]
metric: accuracy
protocol: linear-probe
"""


def test_builtin_cards_parse() -> None:
    cards = load_task_cards()
    assert {"esc50", "synthetic"} <= set(cards)
    esc50 = cards["esc50"]
    assert esc50.dataset == "esc50" and esc50.folds == [1, 2, 3, 4, 5] and esc50.clip_seconds == 5.0
    assert esc50.metric == "accuracy" and esc50.protocol == "linear-probe" and esc50.label_type == "multiclass"
    assert esc50.protocol_options == {"C": 1.0, "max_iter": 1000}
    assert Path(esc50.path).name == "esc50.yaml"
    synthetic = cards["synthetic"]
    assert synthetic.folds == [1, 2, 3, 4] and synthetic.dataset == "synthetic"
    from audiobench.events.scoring import METRICS as EVENT_METRICS
    from audiobench.events_hear import ONSET_COLLARS

    for card in cards.values():
        assert card.dataset in DATASETS and card.protocol in PROTOCOLS, card.name
        known = set(EVENT_METRICS) | set(ONSET_COLLARS) if card.label_type == "events" else set(METRICS.names())
        assert set(card.all_metrics) <= known, card.name


def test_extra_card_directory(tmp_path, monkeypatch) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    (first / "mine.yaml").write_text(CARD.format(name="my-task"))
    (second / "other.yaml").write_text(CARD.format(name="other-task"))
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", f"{first}{__import__('os').pathsep}{second}")
    cards = load_task_cards()
    assert {"esc50", "synthetic", "my-task", "other-task"} <= set(cards)
    assert get_task("my-task").path == str(first / "mine.yaml")


@pytest.mark.parametrize("mutate, expected", [
    (lambda text: text.replace("metric: accuracy\n", ""), "lacks the field(s) metric"),
    (lambda text: text + "metricz: mAP\n", "unknown field(s) metricz"),
    (lambda text: text + "metrics: mAP\n", "metrics must be a list"),
    (lambda text: text.replace("multiclass", "regression"), "label_type"),
    (lambda text: text.replace("type: folds", "type: random"), "splits.type"),
])
def test_invalid_card_names_the_file(tmp_path, monkeypatch, mutate, expected) -> None:
    path = tmp_path / "broken-card.yaml"
    path.write_text(mutate(CARD.format(name="broken")))
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(tmp_path))
    with pytest.raises(AudiobenchError) as info:
        load_task_cards()
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_duplicate_task_name(tmp_path, monkeypatch) -> None:
    (tmp_path / "again.yaml").write_text(CARD.format(name="esc50"))
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(tmp_path))
    with pytest.raises(AudiobenchError, match="defined twice") as info:
        load_task_cards()
    assert "again.yaml" in str(info.value)


@pytest.mark.parametrize("text", ["", "name: [unclosed\n", CARD.format(name="x").replace(
    "splits:\n  type: folds\n  folds: [1, 2, 3, 4]\n", "splits: folds\n")], ids=["empty", "bad-yaml", "splits-str"])
def test_malformed_card_is_an_error_naming_the_file(tmp_path, monkeypatch, text) -> None:
    path = tmp_path / "malformed-card.yaml"
    path.write_text(text)
    monkeypatch.setenv("AUDIOBENCH_TASKS_PATH", str(tmp_path))
    with pytest.raises(AudiobenchError, match="malformed-card.yaml"):
        load_task_cards()


# --------------------------------------------------------------------------- `list` without torch

TORCH_FREE = """
import json, sys
import audiobench, audiobench.cli
from typer.testing import CliRunner
for kind in ("models", "tasks"):
    result = CliRunner().invoke(audiobench.cli.app, ["list", kind, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows, kind
    result = CliRunner().invoke(audiobench.cli.app, ["list", kind])
    assert result.exit_code == 0, result.output
print(json.dumps({"torch": "torch" in sys.modules, "sklearn": "sklearn" in sys.modules}))
"""


def test_list_does_not_import_torch() -> None:
    completed = subprocess.run([sys.executable, "-c", TORCH_FREE], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])
    assert loaded == {"torch": False, "sklearn": False}
