"""The ``cache`` commands: what the cache stores hold, compaction of their shards, and pruning of what no run uses.

Registered on :data:`audiobench.cli.app` when :mod:`audiobench.cli` is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from audiobench.cli import JsonOption, _print_json, app, out, reports_errors

cache_app = typer.Typer(help="Inspect the cache stores (embeddings, frames, teacher logits, audio), compact and "
                             "prune them.",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")

RootOption = typer.Option(None, "--cache-dir", help="Cache root (default: $AUDIOBENCH_CACHE or the user cache).")


def _root(cache_dir: Optional[Path]) -> Path:
    from audiobench.cachedir import cache_root

    return Path(cache_dir).expanduser() if cache_dir else cache_root()


def _what(directory: Path) -> str:
    """A short name for what a store holds, from the description written beside it."""
    for name in ("model.json", "store.json"):
        try:
            content = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        info = content.get("fingerprint") or content.get("info") or {}
        if "model" in info:
            return f"{info['model']} ({info.get('output', 'embedding')})"
        if "sample_rate" in info:
            seconds = info.get("seconds")
            return f"audio {info['sample_rate']} Hz, " + ("whole clips" if seconds is None else f"{seconds:g} s")
    return "?"


def _folder_sizes(root: Path) -> dict[str, int]:
    """Bytes under each top-level folder of the cache root (checkpoints, datasets, embeddings, audio, ...)."""
    sizes: dict[str, int] = {}
    for folder in sorted(path for path in root.iterdir() if path.is_dir()) if root.is_dir() else []:
        sizes[folder.name] = sum(entry.stat().st_size for entry in folder.rglob("*") if entry.is_file())
    return sizes


def _mb(nbytes: int) -> str:
    return f"{nbytes / 1e6:,.1f}"


def _date(seconds: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _usage_row(usage: Any, root: Path) -> dict[str, Any]:
    from audiobench.cache_prune import store_last_used

    return {"store": str(usage.directory.relative_to(root)), "holds": _what(usage.directory),
            "entries": usage.entries, "live_bytes": usage.live_bytes, "shard_bytes": usage.shard_bytes,
            "shards": usage.shards, "waste": round(usage.waste, 4),
            "last_used": _date(store_last_used(usage.directory))}


@cache_app.command("info")
@reports_errors
def info(cache_dir: Optional[Path] = RootOption, as_json: bool = JsonOption,
         folders_too: bool = typer.Option(False, "--folders", help="Also add up the bytes of every top-level folder "
                                                                   "(checkpoints, datasets, ...; walks every file).")
         ) -> None:
    """Every store under the cache root: what it holds, entries, bytes used and wasted."""
    from audiobench.protocols import split_cache
    from audiobench.shard_compaction import find_stores, usage
    from audiobench.shards import ShardStore

    root = _root(cache_dir)
    rows = [_usage_row(usage(ShardStore(directory)), root) for directory in find_stores(root)]
    splits, split_bytes = split_cache.usage(root / split_cache.DIRECTORY)
    folders = _folder_sizes(root) if folders_too else {}
    if as_json:
        _print_json({"root": str(root), "stores": rows,
                     "probe_outputs": {"directory": split_cache.DIRECTORY, "entries": splits, "bytes": split_bytes},
                     **({"folders": folders} if folders_too else {})})
        return
    table = Table(title=f"cache stores under {root}")
    for column in ("store", "holds", "entries", "MB in shards", "waste", "last used"):
        table.add_column(column, justify="left" if column in ("store", "holds") else "right")
    for row in rows:
        table.add_row(row["store"], row["holds"], f"{row['entries']:,}", _mb(row["shard_bytes"]), f"{row['waste']:.0%}",
                      row["last_used"])
    out.print(table)
    total = sum(row["shard_bytes"] for row in rows)
    dead = total - sum(row["live_bytes"] for row in rows)
    out.print(f"{len(rows)} store(s), {_mb(total)} MB in shards, {_mb(dead)} MB not used by any entry"
              + (" (`audiobench cache compact` reclaims it)" if dead else ""))
    if splits:
        out.print(f"probe outputs: {splits:,} split(s), {_mb(split_bytes)} MB in {root / split_cache.DIRECTORY} "
                  "(removing that folder only costs refitting)")
    if folders:
        out.print("on disk by folder: " + ", ".join(f"{name} {_mb(size)} MB" for name, size in folders.items()))


@cache_app.command("compact")
@reports_errors
def compact_command(cache_dir: Optional[Path] = RootOption,
                    min_waste: float = typer.Option(0.25, "--min-waste", min=0.0, max=1.0,
                                                    help="Rewrite a shard once this fraction of it is dead bytes."),
                    timeout: float = typer.Option(10.0, "--timeout", min=0.0,
                                                  help="Seconds to wait for runs using a store to finish with it."),
                    as_json: bool = JsonOption) -> None:
    """Reclaim the bytes of replaced and damaged entries and of interrupted writes, store by store."""
    from audiobench.shard_compaction import compact, find_stores
    from audiobench.shards import ShardStore

    root = _root(cache_dir)
    results = [compact(ShardStore(directory), min_waste, timeout) for directory in find_stores(root)]
    if as_json:
        _print_json({"root": str(root), "stores": [
            {**_usage_row(done.after, root), "bytes_before": done.before.shard_bytes, "rewritten": done.rewritten,
             "removed": done.removed, "dropped": [{"key": key, "reason": reason} for key, reason in done.dropped]}
            for done in results]})
        return
    reclaimed = sum(done.before.shard_bytes - done.after.shard_bytes for done in results)
    for done in results:
        if done.removed or done.dropped:
            where = f"{done.directory.relative_to(root)} ({_what(done.directory)})"
            out.print(f"{where}: {_mb(done.before.shard_bytes)} -> {_mb(done.after.shard_bytes)} MB, "
                      f"{done.rewritten} shard(s) rewritten, {done.removed} removed")
        for key, reason in done.dropped:
            out.print(f"  dropped damaged entry {key}: {reason} (it is recomputed when next needed)")
    out.print(f"{len(results)} store(s) compacted, {_mb(reclaimed)} MB reclaimed")


@cache_app.command("prune")
@reports_errors
def prune_command(cache_dir: Optional[Path] = RootOption,
                  unused_for: float = typer.Option(30.0, "--unused-for", min=0.0,
                                                   help="Days without a run using it after which an entry goes."),
                  dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing."),
                  as_json: bool = JsonOption) -> None:
    """Remove the stores (embeddings, frames, teacher logits, audio) and probe outputs no run has used for
    --unused-for days (they are computed again when needed; a store a running process has open is kept;
    checkpoints, datasets and feature matrices are never pruned)."""
    from audiobench.cache_prune import REMOVED, WOULD_REMOVE, prune

    root = _root(cache_dir)
    items = prune(root, unused_for * 86400.0, dry_run)
    gone = [item for item in items if item.outcome in (REMOVED, WOULD_REMOVE)]
    if as_json:
        _print_json({"root": str(root), "unused_for_days": unused_for, "dry_run": dry_run,
                     "bytes": sum(item.nbytes for item in gone),
                     "items": [{**item.to_dict(), "path": str(item.path.relative_to(root))} for item in items]})
        return
    for item in items:
        if item.kind == "store":  # one line per split entry would drown the stores
            holds = f" ({_what(item.path)})" if item.path.exists() else ""
            out.print(f"{item.path.relative_to(root)}{holds}: {_mb(item.nbytes)} MB, last used "
                      f"{_date(item.last_used)}: {item.outcome}")
    splits = [item for item in gone if item.kind == "probe outputs"]
    if splits:
        out.print(f"probe outputs: {len(splits):,} split entr{'y' if len(splits) == 1 else 'ies'}, "
                  f"{_mb(sum(item.nbytes for item in splits))} MB: {splits[0].outcome}")
    verb = "would free" if dry_run else "freed"
    out.print(f"{len(gone)} item(s) unused for {unused_for:g} day(s), {verb} {_mb(sum(i.nbytes for i in gone))} MB "
              "(computed again when next needed; checkpoints and datasets are never pruned)")
