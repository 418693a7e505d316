"""What the operator CLI prints: tables for list, stats, prune, kinds and import; transcripts.

Usage::

    from session_store_mongo.cli.render import TranscriptPages, sessions_table, transcript_grid

    console.print(sessions_table(project, rows))
    console.print(transcript_grid(entries))      # a few entries, one grid

    pages = TranscriptPages()                    # a transcript of any length and entry size
    for entry in entries:
        if (page := pages.add(entry)) is not None:
            console.print(page)
    if (page := pages.rest()) is not None:
        console.print(page)

Every cell and title is a Rich ``Text`` made by ``literal``: stored text, ids, project keys and
error messages print as they are, never as markup or terminal control sequences. A transcript's
message is cut after ``BODY_CHARS`` characters, with a line saying how many were left out and
that ``show --json`` prints it whole: rendering megabytes into a table costs memory and minutes,
and nobody reads them there.
"""

from __future__ import annotations

import json
import re
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
    "BODY_CHARS",
    "PAGE_CHARS",
    "PAGE_ROWS",
    "TranscriptPages",
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

BODY_CHARS = 10_000
"""Characters of one entry's text ``show`` prints: a few screens of prose, more than a message
typed or answered usually holds. The rest of a longer one (a pasted file, a tool's megabytes)
is left out, and a line says how much."""
PAGE_ROWS = 200
"""Entries rendered into one grid at most: a grid is laid out whole before it prints."""
PAGE_CHARS = 200_000
"""Characters rendered into one grid at most (a grid of long entries ends before ``PAGE_ROWS``):
with ``BODY_CHARS``, what a page costs is bounded whatever the entries' sizes."""
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
_WORD = re.compile(r"\S+")
"""What ``str.split()`` splits out: ``\\s`` is ``str.isspace``."""
_CUT_STYLE = "dim italic"
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
    """``text`` on one line (each run of whitespace one space), cut to ``limit`` with ``…``.

    Only the words the cut keeps are copied: a tool result of megabytes costs its first
    words, not a list of all of them.
    """
    words: list[str] = []
    length = -1
    for word in _WORD.finditer(text):
        start, end = word.span()
        words.append(text[start : min(end, start + limit)])
        length += 1 + end - start
        if length > limit:
            break
    flat = " ".join(words)
    return flat if length <= limit else flat[: limit - 1] + "…"


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


def _clipped(lines: Iterable[str]) -> Text:
    r"""``lines`` joined by newlines, shown literally, cut after ``BODY_CHARS`` characters.

    The cut is made in the stored text, before ``literal`` escapes it: an escape such as
    ``\x1b`` or ``\ud83d`` is whole or absent, never half there. A line in a dimmed style
    then says how many characters were left out and where to see them all. Only what is kept
    is copied: a line of megabytes is counted, not joined.
    """
    kept: list[str] = []
    shown = total = 0
    for number, line in enumerate(lines):
        separator = "\n" if number else ""
        total += len(separator) + len(line)
        if shown < BODY_CHARS:
            piece = separator + line[: BODY_CHARS - shown - len(separator)]
            kept.append(piece)
            shown += len(piece)
    body = literal("".join(kept), multiline=True)
    left_out = total - shown
    if left_out:
        characters = "character" if left_out == 1 else "characters"
        body.append(
            f"\n… {left_out:,} more {characters} not shown: show --json prints this entry whole",
            style=_CUT_STYLE,
        )
    return body


def _entry_row(entry: SessionStoreEntry, label: str | None) -> tuple[Text, Text]:
    kind = entry.get("type", "?")
    message: Any = entry.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if kind in ("user", "assistant") and isinstance(content, (str, list, dict)):
        role = _as_text(message.get("role", kind))
        body = _clipped(_content_lines(content))
    else:  # not a message, or one without content to read: its fields as JSON
        role = kind
        fields = {name: value for name, value in entry.items() if name not in _METADATA_FIELDS}
        body = _clipped([_as_json(fields)])
    shown_role = literal(_shorten(role, _ROLE_CHARS), style=_ROLE_STYLES.get(role, "dim"))
    if label is not None:
        shown_role = literal(label, style=_LABEL_STYLE) + " " + shown_role
    return shown_role, body


def _grid(rows: Iterable[tuple[Text, Text]]) -> Table:
    """Rows of a transcript in a grid.

    Grids of consecutive pages line up: the role column is as wide as ``assistant`` at least.
    """
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, min_width=len("assistant"))
    grid.add_column()
    for row in rows:
        grid.add_row(*row)
    return grid


def transcript_grid(entries: Iterable[SessionStoreEntry], *, subpath: str | None = None) -> Table:
    """A few entries of a transcript, one row each: role, then text, tool calls, short results.

    A text longer than ``BODY_CHARS`` is cut. A transcript of any length goes through
    ``TranscriptPages``, which prints it page by page. Entries of a subagent transcript
    (``subpath``) carry its name before the role.
    """
    label = subpath.rsplit("/", 1)[-1] if subpath is not None else None
    return _grid(_entry_row(entry, label) for entry in entries)


class TranscriptPages:
    """A transcript in grids (pages) of at most ``PAGE_ROWS`` rows and ``PAGE_CHARS`` characters.

    Each entry is rendered (and cut) as it is added, and only its row is kept: a transcript of
    any length, whatever its entries' sizes, prints in bounded memory.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[Text, Text]] = []
        self._chars = 0

    def add(self, entry: SessionStoreEntry) -> Table | None:
        """Add one entry; return the page it completes, to print now, else ``None``."""
        row = _entry_row(entry, None)
        self._rows.append(row)
        self._chars += len(row[0]) + len(row[1])
        if len(self._rows) < PAGE_ROWS and self._chars < PAGE_CHARS:
            return None
        return self.rest()

    def rest(self) -> Table | None:
        """The rows added since the last page, as a page; ``None`` when there are none."""
        if not self._rows:
            return None
        page = _grid(self._rows)
        self._rows, self._chars = [], 0
        return page
