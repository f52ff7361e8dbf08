"""`audiobench leaderboard`: ranked official tables, unranked non-official ones, published numbers, and the
self-contained HTML page checked in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from audiobench import provenance
from audiobench.cli import app
from audiobench.report.leaderboard import (
    PublishedNumbers, metric_direction, pareto_figures, rank_rows,
)

runner = CliRunner()
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def tiny_png() -> bytes:
    """A valid 1x1 PNG, written here so the test needs no image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two official synthetic runs (logmel-stats, mn01 with random weights), one --cv run, and the leaderboards."""
    import audiobench.models.loading as loading
    from audiobench.runner import RunOptions, run

    results = tmp_path_factory.mktemp("results")
    out = tmp_path_factory.mktemp("leaderboards")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setattr(provenance, "git_revision", lambda directory=None: None)
        patch.setattr(loading, "has_released_weights", lambda name: False)  # mn01: random weights, offline
        for model, cv in (("logmel-stats", None), ("mn01", None), ("logmel-stats", 3)):
            run(RunOptions(task="synthetic", model=model, cv=cv, output_dir=results, num_workers=0))
    published = tmp_path_factory.mktemp("published") / "published.yaml"
    published.write_text(yaml.safe_dump({
        "excluded_confidence": ["ai_summary"],
        "records": [
            {"id": "p1", "model": "mn01", "task": "synthetic", "metric": "accuracy", "value": 50.0,
             "unit": "percent", "source": "a made-up table", "protocol": "made up", "confidence": "exact_table"},
            {"id": "p2", "model": "mn01", "task": "synthetic", "metric": "accuracy", "value": 0.99,
             "unit": "fraction", "source": "a summary", "protocol": "made up", "confidence": "ai_summary"},
            {"id": "p3", "model": "mn01", "task": "synthetic", "metric": "mAP", "value": 0.3,
             "unit": "fraction", "source": "other metric", "protocol": "made up", "confidence": "exact_table"},
        ]}))
    (out / "pareto_synthetic_accuracy_macs.png").write_bytes(tiny_png())
    (out / "pareto_synthetic_accuracy_params.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>')
    (out / "pareto_othertask_accuracy_macs.png").write_bytes(tiny_png())
    result = runner.invoke(app, ["leaderboard", "--results", str(results), "--published", str(published),
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    return {"results": results, "out": out, "published": published}


def records_by_model(results: Path) -> dict[tuple[str, bool], dict]:
    found = {}
    for path in results.glob("*.json"):
        record = json.loads(path.read_text())
        found[(record["model"]["name"], record["protocol"]["official"])] = record
    return found


# ------------------------------------------------------------------ tables and Markdown


def test_markdown_ranks_official_and_lists_nonofficial_apart(board_dir: dict[str, Path]) -> None:
    text = (board_dir["out"] / "synthetic.md").read_text()
    official, nonofficial = text.split("## Non-official results (not ranked)")
    records = records_by_model(board_dir["results"])
    means = {key: r["metrics"]["accuracy"]["mean"] for key, r in records.items()}
    best, second = sorted([("logmel-stats", True), ("mn01", True)], key=lambda k: -means[k])
    assert f"| 1 | {best[0]} |" in official and f"| 2 | {second[0]} |" in official
    assert "NON-OFFICIAL" not in official and f"{means[('logmel-stats', False)]:.4f}" in nonofficial
    assert "NON-OFFICIAL: stratified 3-fold" in nonofficial and "| 3 |" not in text
    assert "ddof 0" in official and re.search(r"\| [0-9.]+ \(\d+(\.\d+)? s\) \|", official)  # ddof; MACs' input


def test_published_number_converted_and_differenced(board_dir: dict[str, Path]) -> None:
    text = (board_dir["out"] / "synthetic.md").read_text()
    mean = records_by_model(board_dir["results"])[("mn01", True)]["metrics"]["accuracy"]["mean"]
    row = next(line for line in text.splitlines() if line.startswith("| ") and "| mn01 |" in line)
    assert "0.5000 [p1]" in row and f"{mean - 0.5:+.4f}" in row  # 50 percent -> 0.5; ai_summary p2 skipped
    assert "p1 (mn01): a made-up table" in text and "p2" not in text and "p3" not in text


def test_index_and_figures_in_markdown(board_dir: dict[str, Path]) -> None:
    index = (board_dir["out"] / "README.md").read_text()
    assert "[synthetic](synthetic.md)" in index and "| accuracy | 2 | 1 |" in index
    text = (board_dir["out"] / "synthetic.md").read_text()
    assert "(pareto_synthetic_accuracy_macs.png)" in text and "othertask" not in text


def test_output_is_reproducible(board_dir: dict[str, Path], tmp_path: Path) -> None:
    for path in board_dir["out"].glob("pareto_*"):
        shutil.copy(path, tmp_path / path.name)
    result = runner.invoke(app, ["leaderboard", "--results", str(board_dir["results"]),
                                 "--published", str(board_dir["published"]), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("synthetic.md", "index.html"):
        assert (tmp_path / name).read_text() == (board_dir["out"] / name).read_text()


def test_a_record_made_by_older_code_is_flagged(board_dir: dict[str, Path], tmp_path: Path) -> None:
    text = (board_dir["out"] / "synthetic.md").read_text()
    assert "code changed since" not in text  # every record was made by today's code
    results = tmp_path / "results"
    shutil.copytree(board_dir["results"], results)
    path = next(p for p in results.glob("*.json") if json.loads(p.read_text())["model"]["name"] == "mn01")
    record = json.loads(path.read_text())
    assert record["model"]["code_roots"] and record["protocol"]["implementation"]
    record["model"]["fingerprint"]["implementation"] = "0" * 16  # as if the model code changed after the run
    record["protocol"]["implementation"] = "1" * 16
    path.write_text(json.dumps(record))
    out = tmp_path / "out"
    result = runner.invoke(app, ["leaderboard", "--results", str(results), "--published", str(board_dir["published"]),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = next(line for line in (out / "synthetic.md").read_text().splitlines() if "| mn01 |" in line)
    assert "**model and protocol code changed since this record (re-run it)**" in row
    assert (out / "synthetic.md").read_text().count("code changed since") == 1
    assert 'class="stale">model and protocol code changed since this record' in (out / "index.html").read_text()


def test_direction_table_and_ranking() -> None:
    assert metric_direction("accuracy") == "higher" and metric_direction("something-new") == "higher"
    assert metric_direction("error_rate") == "lower"
    frame = pd.DataFrame({"model": ["a", "b", "c", "d"], "mean": [0.2, 0.5, 0.2, 0.1], "rank": None})
    assert rank_rows(frame, "higher")[["model", "rank"]].values.tolist() == [["b", 1], ["a", 2], ["c", 2], ["d", 4]]
    assert rank_rows(frame, "lower")["model"].tolist() == ["d", "a", "c", "b"]


def test_catalog_aliases_find_published_names() -> None:
    from audiobench.resources import published_numbers_file

    published = PublishedNumbers.load(published_numbers_file())
    assert {"mn04", "mn04_as"} <= published.aliases("mn04")
    (best, *_) = published.matching("mn04", "audioset", "mAP")
    assert best["model"] == "mn04_as" and best["unit"] == "fraction"
    assert published.aliases("no-such-model") == {"no-such-model"}


def test_pareto_files_go_to_the_longest_matching_task(tmp_path: Path) -> None:
    for name in ("pareto_audioset_mAP_macs.png", "pareto_audioset_strong_sed_psds1_macs.svg", "pareto_x.txt",
                 "notes.png"):
        (tmp_path / name).write_bytes(b"x")
    found = pareto_figures(tmp_path, ["audioset", "audioset_strong_sed"])
    assert [p.name for p in found["audioset"]] == ["pareto_audioset_mAP_macs.png"]
    assert [p.name for p in found["audioset_strong_sed"]] == ["pareto_audioset_strong_sed_psds1_macs.svg"]


def test_user_errors_are_reported(tmp_path: Path) -> None:
    result = runner.invoke(app, ["leaderboard", "--results", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "No result records" in result.output
    (tmp_path / "bad.yaml").write_text("just: text\n")
    result = runner.invoke(app, ["leaderboard", "--results", "results", "--published", str(tmp_path / "bad.yaml"),
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "no 'records' list" in result.output


# ------------------------------------------------------------------ the page in a real browser


class PageParser(HTMLParser):
    """Rows (``data-model`` of each ``tr`` in a ``tbody``) per table id, table attributes, images and links."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self.tables: dict[str, dict[str, str | None]] = {}
        self.images: list[str] = []
        self.links: list[str] = []
        self.section_of_table: dict[str, str] = {}
        self._table: str | None = None
        self._heading = ""
        self._in_h3 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.tables[self._table] = attributes
            self.rows[self._table] = []
            self.section_of_table[self._table] = self._heading
        elif tag == "tr" and self._table and "data-model" in attributes:
            self.rows[self._table].append(attributes["data-model"] or "")
        elif tag in ("img", "script", "link") and (attributes.get("src") or attributes.get("href")):
            self.images.append(attributes.get("src") or attributes.get("href") or "")
        elif tag == "a":
            self.links.append(attributes.get("href") or "")
        self._in_h3 = self._in_h3 or tag == "h3"
        if tag == "h3":
            self._heading = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        if tag == "h3":
            self._in_h3 = False

    def handle_data(self, data: str) -> None:
        if self._in_h3:
            self._heading += data


def browser() -> str:
    """The headless browser, or skip (fail under CI=true, where it must run)."""
    found = next((shutil.which(name) for name in BROWSERS if shutil.which(name)), None)
    if found is None:
        message = "no headless chromium installed (apt-get install chromium); the browser test cannot run"
        excuse = os.environ.get("AUDIOBENCH_NO_BROWSER")  # set by .ci/run when it could not install chromium
        if os.environ.get("CI", "").lower() == "true" and not excuse:
            pytest.fail(message + " -- CI=true, so the browser test is required")
        pytest.skip(f"{message} ({excuse})" if excuse else message)
    return found


@pytest.fixture(scope="module")
def chromium() -> str:
    """The browser; listed before ``board_dir`` so a missing browser skips before any run."""
    return browser()


def dump_dom(page: Path, query: str, profile: Path) -> PageParser:
    """The DOM of ``page`` after its scripts ran, as chromium serializes it."""
    command = [browser(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--virtual-time-budget=2000", "--dump-dom", page.as_uri() + query]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0 and "<table" in done.stdout, done.stderr[-2000:]
    parser = PageParser()
    parser.feed(done.stdout)
    return parser


def test_page_loads_with_expected_rows(chromium: str, board_dir: dict[str, Path], tmp_path: Path) -> None:
    dom = dump_dom(board_dir["out"] / "index.html", "", tmp_path)
    means = {key: r["metrics"]["accuracy"]["mean"] for key, r in records_by_model(board_dir["results"]).items()}
    expected = sorted(["logmel-stats", "mn01"], key=lambda m: -means[(m, True)])
    assert dom.rows["official-synthetic"] == expected
    assert dom.rows["nonofficial-synthetic"] == ["logmel-stats"]
    assert dom.section_of_table["official-synthetic"].startswith("Official results (ranked)")
    assert dom.section_of_table["nonofficial-synthetic"] == "Non-official results (not ranked)"
    assert "data-sorted" not in dom.tables["official-synthetic"]  # no sort requested
    sources = dom.images
    # synthetic: its PNG and its SVG-only figure; othertask (no records): its figure in a section of its own
    assert len(sources) == 3 and {s.split(";")[0] for s in sources} == {"data:image/png", "data:image/svg+xml"}
    assert not [link for link in dom.links if link.startswith(("http:", "https:", "//"))]  # no network needed


def test_page_sorts_from_the_query(chromium: str, board_dir: dict[str, Path], tmp_path: Path) -> None:
    page = board_dir["out"] / "index.html"
    means = {key: r["metrics"]["accuracy"]["mean"] for key, r in records_by_model(board_dir["results"]).items()}
    ascending = sorted(["logmel-stats", "mn01"], key=lambda m: means[(m, True)])
    dom = dump_dom(page, "?sort=official-synthetic:score:asc", tmp_path / "a")
    assert dom.rows["official-synthetic"] == ascending
    assert dom.tables["official-synthetic"]["data-sorted"] == "score:asc"
    dom = dump_dom(page, "#sort=official-synthetic:params:desc", tmp_path / "b")
    assert dom.rows["official-synthetic"] == ["mn01", "logmel-stats"]  # numerically: mn01's params > 0
    dom = dump_dom(page, "?sort=official-synthetic:params:desc&sort=official-synthetic:model:asc", tmp_path / "c")
    assert dom.rows["official-synthetic"] == ["logmel-stats", "mn01"]  # the text sort, applied last, wins
    assert dom.tables["official-synthetic"]["data-sorted"] == "model:asc"


def test_header_clicks_toggle_the_order(chromium: str, board_dir: dict[str, Path], tmp_path: Path) -> None:
    page = board_dir["out"] / "index.html"
    click = "click=official-synthetic:model"
    dom = dump_dom(page, f"?{click}", tmp_path / "a")
    assert dom.rows["official-synthetic"] == ["logmel-stats", "mn01"]
    assert dom.tables["official-synthetic"]["data-sorted"] == "model:asc"
    dom = dump_dom(page, f"?{click}&{click}", tmp_path / "b")  # the second click reverses
    assert dom.rows["official-synthetic"] == ["mn01", "logmel-stats"]
    assert dom.tables["official-synthetic"]["data-sorted"] == "model:desc"


def test_figures_of_a_task_without_records_get_their_own_section(board_dir: dict[str, Path], tmp_path: Path) -> None:
    from audiobench.report.leaderboard import build_leaderboards

    (tmp_path / "pareto_audioset_mAP_macs.png").write_bytes(tiny_png())
    (tmp_path / "pareto_audioset_mAP_macs.svg").write_text("<svg/>")
    boards = {b.task: b for b in build_leaderboards(board_dir["results"], board_dir["published"], tmp_path)}
    assert boards["audioset"].metric == "mAP" and boards["audioset"].ranked.empty
    assert [p.suffix for p in boards["audioset"].figures] == [".png", ".svg"]
