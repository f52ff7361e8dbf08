"""The leaderboards as one static, self-contained HTML page (inline CSS, inline vanilla JS, figures as data URIs).

Tables sort on a click on a header (ascending, then descending; numeric-aware, empty cells last). The
page also applies ``?sort=<table id>:<column key>:<asc|desc>`` (repeatable, or ``#sort=...``) on load
through the same function the click handlers call, ``window.audiobenchSort(tableId, key, dir)``, and
``?click=<table id>:<column key>`` (repeatable) presses a header, so a headless browser can check the clicks.
"""

from __future__ import annotations

import base64
import re
from html import escape
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from audiobench.report.board_format import code_note, difference_text, fmt, macs_text, quantity, short_commit
from audiobench.report.leaderboard import TaskBoard

MIME_TYPES: dict[str, str] = {".png": "image/png", ".svg": "image/svg+xml"}

CSS = """
:root { --fg: #1d2330; --muted: #5b6478; --line: #d9dde6; --head: #eef1f6; --accent: #2f5fb3; --bg: #fff; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1500px; padding: 24px 32px 48px; color: var(--fg); background: var(--bg);
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 36px 0 4px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.lead, p.meta { color: var(--muted); margin: 4px 0 10px; max-width: 1100px; }
nav a { margin-right: 14px; color: var(--accent); }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: var(--head); position: sticky; top: 0; vertical-align: bottom; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid var(--accent); }
th[aria-sort="ascending"] button::after { content: " \\25B2"; font-size: 10px; }
th[aria-sort="descending"] button::after { content: " \\25BC"; font-size: 10px; }
td.num { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #f8f9fb; }
tbody tr:hover { background: #eef4ff; }
td.rank { font-weight: 700; }
.small { color: var(--muted); font-size: 12px; }
code { font-size: 12px; }
td.prov { font-size: 12px; color: var(--muted); min-width: 170px; max-width: 240px; overflow-wrap: anywhere; }
td.wrap { min-width: 200px; max-width: 300px; font-size: 12px; }
td.name, .nowrap { white-space: nowrap; }
.pos { color: #1f7a3a; } .neg { color: #b3261e; } .stale { color: #b3261e; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; }
.yes { background: #dff3e4; color: #1f7a3a; } .no { background: #fbe4e2; color: #b3261e; }
.empty { color: var(--muted); font-style: italic; }
ul.notes { font-size: 12px; color: var(--muted); padding-left: 18px; }
figure { margin: 12px 0; display: inline-block; max-width: 100%; }
figure img { max-width: 100%; max-height: 560px; border: 1px solid var(--line); }
figcaption { font-size: 12px; color: var(--muted); }
"""

JS = """
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    var value = cell.getAttribute("data-value");
    return value === null ? cell.textContent.trim() : value;
  }
  function compare(x, y) {
    var nx = Number(x), ny = Number(y);
    if (x !== "" && y !== "" && !isNaN(nx) && !isNaN(ny)) { return nx - ny; }
    return x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"});
  }
  function sortTable(tableId, key, dir) {
    var table = document.getElementById(tableId);
    if (!table || !table.tHead) { return false; }
    var heads = table.tHead.rows[0].cells, index = -1, i;
    for (i = 0; i < heads.length; i++) { if (heads[i].getAttribute("data-key") === key) { index = i; } }
    if (index < 0) { return false; }
    var sign = dir === "desc" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (x === "" || y === "") { return (x === "") - (y === ""); }  /* empty cells last either way */
      return sign * compare(x, y);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    for (i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    heads[index].setAttribute("aria-sort", dir === "desc" ? "descending" : "ascending");
    table.setAttribute("data-sorted", key + ":" + (dir === "desc" ? "desc" : "asc"));
    return true;
  }
  window.audiobenchSort = sortTable;
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (head) {
      var button = head.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        var dir = head.getAttribute("aria-sort") === "ascending" ? "desc" : "asc";
        sortTable(table.id, head.getAttribute("data-key"), dir);
      });
    });
  });
  var requests = new URLSearchParams(window.location.search).getAll("sort");
  var hash = window.location.hash.replace(/^#/, "");
  if (hash.indexOf("sort=") === 0) { requests = requests.concat(new URLSearchParams(hash).getAll("sort")); }
  requests.forEach(function (request) {
    var parts = request.split(":");
    if (parts.length < 3) { return; }
    var dir = parts.pop(), key = parts.pop();
    sortTable(parts.join(":"), key, dir);
  });
  /* ?click=<table id>:<column key> presses that header's button (repeatable): checks the click path */
  new URLSearchParams(window.location.search).getAll("click").forEach(function (request) {
    var cut = request.lastIndexOf(":");
    var table = document.getElementById(request.slice(0, cut));
    var head = table && table.querySelector('th[data-key="' + request.slice(cut + 1) + '"] button');
    if (head) { head.click(); }
  });
})();
"""


def element_id(prefix: str, name: str) -> str:
    """An HTML id from a task name (characters other than letters, digits, ``_`` and ``-`` become ``-``)."""
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}"


def data_uri(path: Path) -> str:
    """A figure file as a ``data:`` URI."""
    return f"data:{MIME_TYPES[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and pd.isna(value))


def _sort_value(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(float(value)) if isinstance(value, (int, float)) else str(value)


def _td(content: str, value: Any = None, css: str = "", title: str | None = None) -> str:
    attributes = f' data-value="{escape(_sort_value(value))}"' if value is not None or css == "num" else ""
    attributes += f' class="{css}"' if css else ""
    attributes += f' title="{escape(title)}"' if title else ""
    return f"<td{attributes}>{content}</td>"


def _score_cell(row: dict[str, Any]) -> str:
    text = escape(fmt(row["mean"]))
    if not _missing(row["std"]):
        text += (f" ± {escape(fmt(row['std']))}<br><span class=\"small\">n={row['n_splits']}, "
                 f"ddof {escape(str(row['std_ddof']))}</span>")
    return _td(text, row["mean"], "num")


def _published_cell(row: dict[str, Any], task: str) -> str:
    if _missing(row["published"]):
        return _td("–", None, "num", "no published number for this model, task and metric")
    anchor = element_id("pub", f"{task}-{row['published_id']}")
    title = f"{row['published_source']}; protocol: {row['published_protocol']}"
    return _td(f'{escape(fmt(row["published"]))}<br><a class="small" href="#{anchor}">{escape(row["published_id"])}'
               "</a>", row["published"], "num", title)


def _difference_cell(row: dict[str, Any]) -> str:
    value = row["difference"]
    css = "" if _missing(value) else (" pos" if value > 0 else " neg" if value < 0 else "")
    return _td(f'<span class="{css.strip()}">{escape(difference_text(value))}</span>', value, "num")


def _provenance(row: dict[str, Any]) -> str:
    return (f"record {row['record_file']}; commit {row['commit'] or 'unknown'}"
            f"{' (dirty tree)' if row['dirty'] else ''}; date {row['date'] or 'unknown'}; "
            f"command: {row['command'] or 'unknown'}" + (f"; {code_note(row)}" if code_note(row) else ""))


def _provenance_cell(row: dict[str, Any]) -> str:
    note = code_note(row)
    content = (f"<code>{escape(row['record_file'])}</code><br>commit {escape(short_commit(row))}"
               f"<br><span class=\"nowrap\">{escape(row['date'] or 'date unknown')}</span>"
               + (f'<br><strong class="stale">{escape(note)}</strong>' if note else ""))
    return _td(content, row["record_file"], "prov", _provenance(row))


Column = tuple[str, str, Callable[[dict[str, Any], str], str]]

COMMON_COLUMNS: list[Column] = [
    ("model", "Model", lambda r, t: _td(f"<strong>{escape(r['model'])}</strong>", r["model"], "name")),
    ("family", "Family", lambda r, t: _td(escape(r["family"] or "–"), r["family"] or "", "name")),
    ("params", "Params (M)", lambda r, t: _td(escape(quantity(r["params_M"])), r["params_M"], "num")),
    ("macs", "MACs (G, input)", lambda r, t: _td(escape(macs_text(r)), r["macs_G"], "num")),
    ("latency", "Latency (ms)", lambda r, t: _td(escape(fmt(r["latency_ms"], 2)), r["latency_ms"], "num",
                                                r["latency_note"] or "not measured")),
    ("score", "Score", lambda r, t: _score_cell(r)),
    ("official", "Official", lambda r, t: _td(f'<span class="badge {"yes" if r["official"] else "no"}">'
                                              f'{"yes" if r["official"] else "no"}</span>', r["official"])),
]
PROTOCOL_COLUMNS: list[Column] = [
    ("protocol", "Protocol / coverage",
     lambda r, t: _td(f'{escape(r["protocol"])}<br><span class="small">coverage: {escape(r["coverage"])}</span>',
                      r["protocol"], "wrap")),
]
TAIL_COLUMNS: list[Column] = [
    ("published", "Published", _published_cell),
    ("difference", "Record − published", lambda r, t: _difference_cell(r)),
    ("record", "Record (provenance)", lambda r, t: _provenance_cell(r)),
]
RANK_COLUMN: Column = ("rank", "Rank", lambda r, t: _td(str(r["rank"]), r["rank"], "num rank"))


def table_html(table_id: str, frame: pd.DataFrame, columns: list[Column], task: str, metric: str) -> str:
    """One sortable table; the score column is titled with the metric."""
    heads = "".join(
        f'<th data-key="{key}" scope="col"><button type="button">'
        f'{escape(metric if key == "score" else label)}</button></th>' for key, label, _ in columns)
    rows = "".join(
        f'<tr data-model="{escape(row["model"])}" data-record="{escape(row["record_file"])}" '
        f'title="{escape(_provenance(row))}">' + "".join(cell(row, task) for _, _, cell in columns) + "</tr>"
        for row in frame.to_dict("records"))
    return (f'<div class="scroll"><table id="{table_id}" class="board sortable"><thead><tr>{heads}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _published_list(board: TaskBoard) -> str:
    items = {}
    for row in board.rows():
        if row["published_id"]:
            others = "".join(f"; other match {escape(i)} = {escape(fmt(v))}" for i, v in row["published_others"])
            items[row["published_id"]] = (
                f'<li id="{element_id("pub", board.task + "-" + row["published_id"])}">'
                f'<strong>{escape(row["published_id"])}</strong> ({escape(row["model"])}, '
                f'{escape(fmt(row["published"]))} as a fraction): {escape(row["published_source"] or "")}; '
                f'protocol: {escape(row["published_protocol"] or "")}{others}</li>')
    if not items:
        return ""
    return '<h3>Published numbers</h3><ul class="notes">' + "".join(items[k] for k in sorted(items)) + "</ul>"


def task_section(board: TaskBoard) -> str:
    """The section of one task: ranked table, non-official table, published sources, figures."""
    better = "higher" if board.direction == "higher" else "lower"
    parts = [f'<section class="task" id="{element_id("task", board.task)}">',
             f"<h2>{escape(board.task)}</h2>",
             f'<p class="meta">Primary metric <strong>{escape(board.metric)}</strong> ({better} is better). '
             "Score: mean ± standard deviation over folds/seeds (n splits, ddof as recorded), as fractions. "
             "Published values converted to fractions; difference = record − published. Hover a row for its "
             "provenance.</p>",
             "<h3>Official results (ranked)</h3>"]
    if board.ranked.empty:
        parts.append('<p class="empty">No official result yet.</p>')
    else:
        parts.append(table_html(element_id("official", board.task), board.ranked,
                                [RANK_COLUMN, *COMMON_COLUMNS, *TAIL_COLUMNS], board.task, board.metric))
    parts.append("<h3>Non-official results (not ranked)</h3>")
    if board.unranked.empty:
        parts.append('<p class="empty">None.</p>')
    else:
        parts.append('<p class="meta">Other protocol or incomplete data: not comparable with the ranked table, '
                     "and never ranked.</p>")
        parts.append(table_html(element_id("nonofficial", board.task), board.unranked,
                                [*COMMON_COLUMNS, *PROTOCOL_COLUMNS, *TAIL_COLUMNS], board.task, board.metric))
    parts.append(_published_list(board))
    if board.superseded:
        parts.append('<h3>Superseded records</h3><ul class="notes">'
                     + "".join(f"<li><code>{escape(name)}</code></li>" for name in board.superseded) + "</ul>")
    if board.figures:
        parts.append("<h3>Pareto figures</h3>")
        parts += [f'<figure><img src="{data_uri(path)}" alt="{escape(path.stem)}">'
                  f"<figcaption>{escape(path.name)}</figcaption></figure>" for path in board.figures
                  if path.suffix == ".png" or path.with_suffix(".png") not in board.figures]  # one picture per figure
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def leaderboard_html(boards: list[TaskBoard]) -> str:
    """The whole page."""
    records = sum(len(b.ranked) + len(b.unranked) + len(b.superseded) for b in boards)
    nav = " ".join(f'<a href="#{element_id("task", b.task)}">{escape(b.task)}</a>' for b in boards)
    body = "\n".join(task_section(board) for board in boards)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>audiobench leaderboards</title><style>{CSS}</style></head>\n<body>\n"
        "<header><h1>audiobench leaderboards</h1>"
        f'<p class="lead">Generated by <code>audiobench leaderboard</code> from {records} result record(s) and the '
        "curated published numbers. Only official results are ranked. Click a column header to sort.</p>"
        f"<nav>{nav}</nav></header>\n{body}\n<script>{JS}</script>\n</body></html>\n"
    )
