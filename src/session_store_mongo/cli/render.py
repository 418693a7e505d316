"""What the operator CLI prints: tables for list, stats, prune, kinds and import; transcripts.

Usage::

    from session_store_mongo.cli.render import sessions_table, transcript_grid

    console.print(sessions_table(project, rows))
    console.print(transcript_grid(entries))

Every cell and title is a Rich ``Text`` made by ``literal``: stored text, ids, project keys and
error messages print as they are, never as markup or terminal control sequences.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from session_store_protocol.registry import StoreRegistry
from session_store_protocol.types import SessionListSubkeysKey, SessionStoreEntry

from ..migrate import MigrationReport
from ..store import StoreStats
from .importer import ImportReport
from .literal import literal

__all__ = [
    "human_bytes",
    "import_summary",
    "interrupted_import",
    "kinds_tables",
    "local_time",
    "migration_summary",
    "pruned_table",
    "sessions_table",
    "stats_tables",
    "title_of",
    "transcript_grid",
]

_RESULT_CHARS = 200
_ARGUMENT_CHARS = 60
_TITLE_CHARS = 80
_ROLE_CHARS = 20
"""The role column does not wrap: a longer role (stored data) is cut, not the messages."""
_TITLE_FIELDS = ("custom_title", "ai_title", "summary_hint", "first_prompt")
_METADATA_FIELDS = {
    "type", "uuid", "parentUuid", "timestamp", "sessionId", "cwd", "version", "gitBranch",
    "userType", "isSidechain",
}  # fmt: skip
_LABEL_STYLE = "bold magenta"
_ROLE_STYLES = {"user": "bold cyan", "assistant": "bold green"}


def local_time(epoch_ms: int) -> str:
    """An epoch-milliseconds time as local ISO 8601, to the second."""
    return datetime.fromtimestamp(epoch_ms / 1000).astimezone().isoformat(timespec="seconds")


def human_bytes(count: int) -> str:
    """A byte count in B, KiB, MiB, GiB or TiB."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _table(title: str, *headers: str) -> Table:
    """A table whose cells fold rather than cut, so ids stay whole in a narrow terminal."""
    table = Table(title=literal(title))
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _row(table: Table, *cells: str, style: str | None = None) -> None:
    table.add_row(*(literal(cell) for cell in cells), style=style)


def _shorten(text: str, limit: int = _RESULT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# -- kinds, import, prune ----------------------------------------------------------------------


def kinds_tables(registry: StoreRegistry) -> list[Table]:
    """The kinds plugins offer, and a second table of plugins that failed to load, if any."""
    table = _table("store kinds", "kind", "plugin", "distribution", "version")
    for kind in registry.kinds():
        plugin = registry.plugin_for(kind)
        _row(table, kind, plugin.name, plugin.distribution or "-", plugin.version or "-")
    tables = [table]
    failures = registry.failures()
    if failures:
        failed = _table("plugins that failed to load", "plugin", "distribution", "error")
        for failure in failures:
            _row(failed, failure.name, failure.distribution or "-", failure.error, style="red")
        tables.append(failed)
    return tables


def import_summary(report: ImportReport) -> Table:
    """Sessions and transcripts stored, entries, duplicates, files that stored nothing, errors."""
    table = _table("import summary", "", "count")
    _row(table, "sessions", str(len(report.sessions)))
    _row(table, "transcripts", str(report.transcripts))
    _row(table, "files with nothing stored", str(report.nothing_stored))
    _row(table, "entries stored", str(report.stored))
    _row(table, "skipped duplicates", str(report.skipped))
    _row(table, "errors", str(len(report.errors)), style="red" if report.errors else None)
    return table


def interrupted_import(report: ImportReport, files: int) -> str:
    """The line an import stopped by Ctrl-C prints: how far it got out of ``files``."""
    return (
        f"import interrupted after {report.files} of {files} files ({report.stored} entries "
        "stored from them, files in progress in part): run it again to resume (what was stored "
        "is kept and is not stored twice)"
    )


def migration_summary(report: MigrationReport) -> Table:
    """What a migration copied, verified and met (or, for a dry run, would)."""
    copied = "entries to copy" if report.dry_run else "entries copied"
    table = _table("migration dry run" if report.dry_run else "migration summary", "", "count")
    rows = [
        ("source documents", report.documents, None),
        ("sessions", report.sessions, None),
        ("empty sessions (nothing to copy)", report.empty, None),
        ("malformed documents (skipped)", report.count("malformed"), "red"),
        ("transcripts", report.transcripts, None),
        ("  of them subagent transcripts", report.subagent_transcripts, None),
        ("entries", report.entries, None),
        ("size", human_bytes(report.bytes), None),
        (copied, report.copied, None),
        ("entries already in the store", report.present, None),
        ("sessions with unattributed subagent entries", report.count("unattributed"), "yellow"),
        ("transcripts with repeated uuids", report.count("duplicate"), "yellow"),
        ("transcripts differing in the store (left alone)", report.count("diverged"), "red"),
    ]
    if not report.dry_run:
        rows += [
            ("transcripts verified", report.verified, None),
            ("verification failures", report.count("mismatch"), "red"),
            ("source documents dropped", report.dropped, None),
        ]
    for name, value, style in rows:
        _row(table, name, str(value), style=style if value not in (0, "0") else None)
    return table


def pruned_table(sessions: list[SessionListSubkeysKey], *, dry_run: bool) -> Table:
    """The sessions a prune deleted (or would delete), sorted by project and id."""
    verb = "would delete" if dry_run else "deleted"
    table = _table(f"{verb} {len(sessions)} sessions", "project", "session")
    for item in sorted(sessions, key=lambda s: (s["project_key"], s["session_id"])):
        _row(table, item["project_key"], item["session_id"])
    return table


# -- list and stats ----------------------------------------------------------------------------


def title_of(summary: dict[str, Any]) -> str:
    """A session's whole title from its summary: custom, AI-made, hint, or the first prompt."""
    for name in _TITLE_FIELDS:
        value = summary.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def sessions_table(project: str, rows: list[dict[str, Any]]) -> Table:
    """The ``list`` table: session, last write, entries and title (shortened: ``--json`` has it)."""
    table = _table(f"sessions of {project}", "session", "modified", "entries", "title")
    for row in rows:
        title = _shorten(row["title"], _TITLE_CHARS)
        _row(table, row["session_id"], row["modified"], str(row["entries"]), title)
    return table


def stats_tables(database: str, totals: StoreStats) -> list[Table]:
    """The totals of a store, and its largest sessions if it has any."""
    summary = _table(f"store {database}", "", "total")
    _row(summary, "sessions", str(totals.sessions))
    _row(summary, "transcripts", str(totals.transcripts))
    _row(summary, "entries", str(totals.entries))
    _row(summary, "size", human_bytes(totals.bytes))
    if totals.forgotten:
        _row(summary, "forgotten sessions (data key destroyed)", str(totals.forgotten))
    tables = [summary]
    if totals.largest:
        table = _table("largest sessions", "project", "session", "entries", "size", "modified")
        for item in totals.largest:
            _row(
                table,
                item.project_key,
                item.session_id,
                str(item.entries),
                human_bytes(item.bytes),
                local_time(item.mtime),
            )
        tables.append(table)
    return tables


# -- show --------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _as_json(value: Any) -> str:
    """A value of no shape the renderer knows, as compact JSON: never a Python repr."""
    return _shorten(json.dumps(value, ensure_ascii=False))


def _argument_summary(arguments: Any) -> str:
    if isinstance(arguments, dict):
        parts = (
            f"{name}={_shorten(_as_text(value), _ARGUMENT_CHARS)}"
            for name, value in arguments.items()
        )
        return _shorten(", ".join(parts))
    return _shorten(_as_text(arguments))


def _content_lines(content: Any) -> Iterator[str]:
    """Readable lines of a message's content (or a tool result's): text, or one per block."""
    if isinstance(content, str):
        yield content
        return
    for block in content if isinstance(content, list) else [content]:
        yield _block_line(block)


def _block_line(block: Any) -> str:
    """A content block: its text, a tool call, a shortened tool result, thinking or ``[type]``.

    A block of any other shape (not an object, no string ``type``, a field of the wrong type,
    a list in a list) is shown as compact JSON.
    """
    kind = block.get("type") if isinstance(block, dict) else None
    if kind == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    if kind == "tool_use" and isinstance(block.get("name"), str):
        return f"→ {block['name']}({_argument_summary(block.get('input'))})"
    if kind == "tool_result":
        return f"← {_shorten(' '.join(_content_lines(block.get('content'))))}"
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return f"(thinking) {_shorten(block['thinking'])}"
    if isinstance(kind, str) and kind not in ("text", "tool_use", "thinking"):
        return f"[{kind}]"  # an image, a document...: named, not shown
    return _as_json(block)


def _entry_row(entry: SessionStoreEntry, label: str | None) -> tuple[Text, Text]:
    kind = entry.get("type", "?")
    message: Any = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if kind in ("user", "assistant") and isinstance(content, (str, list, dict)):
        role = _as_text(message.get("role", kind))
        body = "\n".join(_content_lines(content))
    else:  # not a message, or one without content to read: its fields as JSON
        role = kind
        body = _as_json(
            {name: value for name, value in entry.items() if name not in _METADATA_FIELDS}
        )
    shown_role = literal(_shorten(role, _ROLE_CHARS), style=_ROLE_STYLES.get(role, "dim"))
    if label is not None:
        shown_role = literal(label, style=_LABEL_STYLE) + " " + shown_role
    return shown_role, literal(body, multiline=True)


def transcript_grid(entries: Iterable[SessionStoreEntry], *, subpath: str | None = None) -> Table:
    """A transcript, one row per entry: role, then text, tool calls and shortened results.

    Entries of a subagent transcript (``subpath``) carry its name before the role. Grids of
    consecutive pages line up: the role column is as wide as ``assistant`` at least.
    """
    label = subpath.rsplit("/", 1)[-1] if subpath is not None else None
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, min_width=len("assistant"))
    grid.add_column()
    for entry in entries:
        grid.add_row(*_entry_row(entry, label))
    return grid
