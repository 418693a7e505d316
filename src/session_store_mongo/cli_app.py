"""The Typer application behind ``session-store-mongo`` (run it through ``cli.main``).

Usage::

    from typer.testing import CliRunner
    from session_store_mongo.cli_app import app

    result = CliRunner().invoke(app, ["--url", url, "--project", "p", "list", "--json"])

Every command that touches the store opens one ``MongoSessionStore`` inside ``asyncio.run`` and
closes it on the way out. Errors end as one red line on stderr: exit 1 for store and connection
failures, exit 2 for usage errors. Passwords are scrubbed from everything printed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from session_store_protocol import StoreRegistry
from session_store_protocol.errors import (
    InvalidEntryError,
    InvalidStoreOptionsError,
    SessionStoreError,
    SummariesUnavailableError,
)
from session_store_protocol.types import SessionKey, SessionStoreEntry

from .builder import validate_database_name
from .cli_layout import (
    LayoutError,
    Transcript,
    find_transcripts,
    project_key_for_directory,
    read_entries,
    transcript_path,
    write_entries,
)
from .redact import password_of_url, redact_text
from .store import DEFAULT_DATABASE, MongoSessionStore

__all__ = ["app"]

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_BATCH = 500
_MAX_ERRORS_SHOWN = 20
_RESULT_CHARS = 200
_ARGUMENT_CHARS = 60
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TITLE_FIELDS = ("custom_title", "ai_title", "summary_hint", "first_prompt")

app = typer.Typer(
    name="session-store-mongo",
    help="Import, inspect, export and prune Claude Code transcripts in a MongoDB session store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@dataclass
class Settings:
    """The global options, shared by every command through ``ctx.obj``."""

    url: str | None
    database: str
    project: str | None
    timeout: float | None
    out: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def project_key(self) -> str:
        """``--project``, or the current directory's key as the SDK computes it."""
        return self.project if self.project is not None else project_key_for_directory()

    def fail(self, message: str, code: int = EXIT_FAILURE) -> NoReturn:
        """Print one red line on stderr, without any password, and exit with ``code``."""
        secret = password_of_url(self.url) if self.url else None
        clean = redact_text(message, [secret] if secret else [])
        self.err.print(f"[bold red]error:[/] {escape(clean)}", highlight=False, soft_wrap=True)
        raise typer.Exit(code)

    def session_key(self, session_id: str, subpath: str | None = None) -> SessionKey:
        """The store key of a session of ``--project``."""
        key: SessionKey = {"project_key": self.project_key, "session_id": session_id}
        if subpath is not None:
            key["subpath"] = subpath
        return key


def _client_options(timeout: float | None) -> dict[str, Any]:
    """Client options for ``--timeout`` (the URL's own options apply otherwise)."""
    if timeout is None:
        return {}
    return {
        "serverSelectionTimeoutMS": int(timeout * 1000),
        "connectTimeoutMS": int(timeout * 1000),
    }


def _with_store(
    settings: Settings,
    operation: Callable[[MongoSessionStore], Awaitable[T]],
    *,
    create_indexes: bool = True,
) -> T:
    """Run ``operation`` on a store opened from the global options, then close the store."""
    if not settings.url:
        settings.fail("no MongoDB URL: pass --url or set MONGO_URL", EXIT_USAGE)
    url = settings.url

    async def run() -> T:
        validate_database_name(settings.database)
        store = MongoSessionStore(
            url=url,
            database=settings.database,
            client_options=_client_options(settings.timeout),
            create_indexes=create_indexes,
        )
        async with store:
            return await operation(store)

    try:
        return asyncio.run(run())
    except InvalidStoreOptionsError as exc:
        settings.fail(str(exc), EXIT_USAGE)
    except (SessionStoreError, PyMongoError, OSError) as exc:
        settings.fail(str(exc) or type(exc).__name__)


def _settings(ctx: typer.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)  # set by the app callback before any command
    return settings


@app.callback()
def configure(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(envvar="MONGO_URL", show_envvar=True, help="MongoDB connection URL."),
    ] = None,
    database: Annotated[
        str, typer.Option(envvar="MONGO_DATABASE", show_envvar=True, help="Database name.")
    ] = DEFAULT_DATABASE,
    project: Annotated[
        str | None,
        typer.Option(help="Project key (default: the current directory's, as the SDK derives it)."),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(min=0.1, help="Seconds to wait for the server (default: the store's)."),
    ] = None,
) -> None:
    """Import, inspect, export and prune Claude Code transcripts in a MongoDB session store."""
    ctx.obj = Settings(url=url, database=database, project=project, timeout=timeout)


# -- formatting helpers ------------------------------------------------------------------------


def _local_time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000).astimezone().isoformat(timespec="seconds")


def _human_bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _table(title: str, *headers: str) -> Table:
    """A table whose cells fold rather than cut, so ids stay whole in a narrow terminal."""
    table = Table(title=title)
    for header in headers:
        table.add_column(header, overflow="fold")
    return table


def _shorten(text: str, limit: int = _RESULT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"bad duration {text!r}: use a number and a unit s/m/h/d/w, e.g. 30d")
    return timedelta(seconds=float(match["amount"]) * _UNIT_SECONDS[match["unit"]])


# -- kinds -------------------------------------------------------------------------------------


@app.command()
def kinds(ctx: typer.Context) -> None:
    """List the store kinds plugins offer, and plugins that failed to load."""
    settings = _settings(ctx)
    registry = StoreRegistry()
    table = _table("store kinds", "kind", "plugin", "distribution", "version")
    for kind in registry.kinds():
        plugin = registry.plugin_for(kind)
        table.add_row(kind, plugin.name, plugin.distribution or "-", plugin.version or "-")
    settings.out.print(table)
    failures = registry.failures()
    if failures:
        failed = _table("plugins that failed to load", "plugin", "distribution", "error")
        for failure in failures:
            failed.add_row(failure.name, failure.distribution or "-", failure.error, style="red")
        settings.out.print(failed)


# -- import ------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, for the summary table."""

    sessions: set[tuple[str, str]] = field(default_factory=set)
    transcripts: int = 0
    stored: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class _Importer:
    """Streams transcripts into the store in batches, reporting bad lines and duplicates."""

    def __init__(
        self, store: MongoSessionStore, settings: Settings, progress: Progress, batch_size: int
    ) -> None:
        self._store = store
        self._settings = settings
        self._progress = progress
        self._batch_size = batch_size
        self.report = ImportReport()

    def _error(self, message: str) -> None:
        self.report.errors.append(message)
        if len(self.report.errors) <= _MAX_ERRORS_SHOWN:
            self._progress.console.print(f"[red]{escape(message)}[/]", highlight=False)

    async def _append(
        self, transcript: Transcript, batch: list[SessionStoreEntry], lines: list[int]
    ) -> int:
        """Append one batch; return how many entries it offered (0 if the store refused it)."""
        try:
            await self._store.append(transcript.key, batch)
        except InvalidEntryError as exc:
            self._error(f"{transcript.path}:{lines[0]}-{lines[-1]}: batch refused: {exc}")
            return 0
        return len(batch)

    async def _stored_without_uuid(self, key: SessionKey) -> Counter[str]:
        """The entries without ``uuid`` already under ``key``, as canonical JSON, counted.

        The store appends such entries on every call (the contract has no other identity for
        them), so a re-import must skip the ones already there itself.
        """
        counts: Counter[str] = Counter()
        for entry in await self._store.load(key) or []:
            if entry.get("uuid") is None:
                counts[_canonical(entry)] += 1
        return counts

    async def transcript(self, transcript: Transcript, task: Any) -> None:
        """Import one file; the store's count before and after tells duplicates apart."""
        before = await self._store.size(transcript.key)
        already = await self._stored_without_uuid(transcript.key) if before else Counter[str]()
        offered = 0
        batch: list[SessionStoreEntry] = []
        lines: list[int] = []
        try:
            for line in read_entries(transcript.path):
                self._progress.advance(task, line.size)
                if line.entry is None:
                    self._error(f"{transcript.path}:{line.number}: {line.error}")
                    continue
                if line.entry.get("uuid") is None and already[_canonical(line.entry)] > 0:
                    already[_canonical(line.entry)] -= 1
                    offered += 1
                    continue
                batch.append(line.entry)
                lines.append(line.number)
                if len(batch) >= self._batch_size:
                    offered += await self._append(transcript, batch, lines)
                    batch, lines = [], []
        except OSError as exc:
            self._error(f"{transcript.path}: cannot read: {exc.strerror or exc}")
        if batch:
            offered += await self._append(transcript, batch, lines)
        stored = await self._store.size(transcript.key) - before
        self.report.transcripts += 1
        self.report.sessions.add((transcript.key["project_key"], transcript.key["session_id"]))
        self.report.stored += stored
        self.report.skipped += max(offered - stored, 0)


def _canonical(entry: SessionStoreEntry) -> str:
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def _import_summary(report: ImportReport) -> Table:
    table = _table("import summary", "", "count")
    table.add_row("sessions", str(len(report.sessions)))
    table.add_row("transcripts", str(report.transcripts))
    table.add_row("entries stored", str(report.stored))
    table.add_row("skipped duplicates", str(report.skipped))
    table.add_row("errors", str(len(report.errors)), style="red" if report.errors else None)
    return table


@app.command("import")
def import_transcripts(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            help="JSONL transcripts, project directories (~/.claude/projects/<project>) or "
            "the projects root.",
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Entries per append.")] = DEFAULT_BATCH,
) -> None:
    """Import Claude Code transcripts; importing again stores nothing twice."""
    settings = _settings(ctx)
    transcripts: list[Transcript] = []
    try:
        for path in paths:
            loose_project = settings.project_key if path.is_file() else ""
            transcripts.extend(find_transcripts(path, loose_project=loose_project))
    except LayoutError as exc:
        settings.fail(str(exc), EXIT_USAGE)
    total = sum(t.path.stat().st_size for t in transcripts)

    async def run(store: MongoSessionStore) -> ImportReport:
        progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=settings.err,
            disable=not settings.err.is_terminal,
        )
        importer = _Importer(store, settings, progress, batch_size)
        with progress:
            task = progress.add_task("import", total=total)
            for transcript in transcripts:
                await importer.transcript(transcript, task)
        return importer.report

    report = _with_store(settings, run)
    hidden = len(report.errors) - _MAX_ERRORS_SHOWN
    if hidden > 0:
        settings.err.print(f"[red]… and {hidden} more errors[/]")
    settings.out.print(_import_summary(report))
    if report.errors:
        raise typer.Exit(EXIT_FAILURE)


# -- export ------------------------------------------------------------------------------------


@app.command("export")
def export_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Directory to write <project>/ into.")],
) -> None:
    """Write a session (and its subagents) back in Claude Code's on-disk layout."""
    settings = _settings(ctx)
    main_key = settings.session_key(session)

    async def run(store: MongoSessionStore) -> list[tuple[Path, int]]:
        subpaths = await store.list_subkeys(
            {"project_key": main_key["project_key"], "session_id": session}
        )
        keys = [main_key, *(settings.session_key(session, subpath) for subpath in subpaths)]
        written: list[tuple[Path, int]] = []
        for key in keys:
            entries = await store.load(key)
            if entries is None:
                continue
            path = transcript_path(out, key)
            write_entries(path, entries)
            written.append((path, len(entries)))
        return written

    try:
        written = _with_store(settings, run)
    except LayoutError as exc:
        settings.fail(str(exc))
    if not written:
        settings.fail(f"session {session} not found in project {main_key['project_key']}")
    for path, count in written:
        settings.out.print(f"wrote {path} ({count} entries)", highlight=False, soft_wrap=True)


# -- list --------------------------------------------------------------------------------------


def _title(data: dict[str, Any]) -> str:
    for name in _TITLE_FIELDS:
        value = data.get(name)
        if isinstance(value, str) and value.strip():
            return _shorten(value, 80)
    return ""


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many sessions.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead.")] = False,
) -> None:
    """List a project's sessions, newest first."""
    settings = _settings(ctx)
    project = settings.project_key

    async def run(store: MongoSessionStore) -> list[dict[str, Any]]:
        listed = sorted(await store.list_sessions(project), key=lambda s: -s["mtime"])[:limit]
        try:
            summaries = {
                s["session_id"]: s["data"] for s in await store.list_session_summaries(project)
            }
        except SummariesUnavailableError:
            summaries = {}
        return [
            {
                "session_id": item["session_id"],
                "mtime": item["mtime"],
                "modified": _local_time(item["mtime"]),
                "entries": await store.size(settings.session_key(item["session_id"])),
                "title": _title(summaries.get(item["session_id"], {})),
            }
            for item in listed
        ]

    rows = _with_store(settings, run)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = _table(f"sessions of {project}", "session", "modified", "entries", "title")
    for row in rows:
        table.add_row(row["session_id"], row["modified"], str(row["entries"]), row["title"])
    settings.out.print(table)


# -- show --------------------------------------------------------------------------------------


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _argument_summary(arguments: Any) -> str:
    if isinstance(arguments, dict):
        parts = (
            f"{name}={_shorten(_as_text(value), _ARGUMENT_CHARS)}"
            for name, value in arguments.items()
        )
        return _shorten(", ".join(parts))
    return _shorten(_as_text(arguments))


def _result_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            block.get("text", f"[{block.get('type')}]") if isinstance(block, dict) else str(block)
            for block in content
        )
    return _as_text(content)


def _content_lines(content: Any) -> Iterator[str]:
    """Readable lines of a message's content: text, tool calls and shortened tool results."""
    if isinstance(content, str):
        yield content
        return
    for block in content if isinstance(content, list) else [content]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            yield str(block.get("text", ""))
        elif kind == "tool_use":
            yield f"→ {block.get('name')}({_argument_summary(block.get('input'))})"
        elif kind == "tool_result":
            yield f"← {_shorten(_result_text(block.get('content')))}"
        elif kind == "thinking":
            yield f"(thinking) {_shorten(str(block.get('thinking', '')))}"
        else:
            yield f"[{kind or type(block).__name__}]"


_METADATA_FIELDS = {
    "type", "uuid", "parentUuid", "timestamp", "sessionId", "cwd", "version", "gitBranch",
    "userType", "isSidechain",
}  # fmt: skip
_ROLE_STYLES = {"user": "bold cyan", "assistant": "bold green"}


def _entry_row(entry: SessionStoreEntry) -> tuple[Text, Text]:
    kind = entry.get("type", "?")
    message: Any = entry.get("message")
    if kind in ("user", "assistant") and isinstance(message, dict):
        role = str(message.get("role", kind))
        body = "\n".join(_content_lines(message.get("content")))
    else:
        role = kind
        rest = {name: value for name, value in entry.items() if name not in _METADATA_FIELDS}
        body = _shorten(json.dumps(rest, ensure_ascii=False))
    return Text(role, style=_ROLE_STYLES.get(role, "dim")), Text(body)


def _transcript_grid(entries: Iterable[SessionStoreEntry]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for entry in entries:
        grid.add_row(*_entry_row(entry))
    return grid


@app.command("show")
def show_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    subpath: Annotated[
        str | None, typer.Option(help="A subagent transcript, e.g. subagents/agent-<id>.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the raw entries as JSONL.")
    ] = False,
) -> None:
    """Print a transcript: messages, tool calls and shortened tool results."""
    settings = _settings(ctx)
    key = settings.session_key(session, subpath)
    entries = _with_store(settings, lambda store: store.load(key))
    if entries is None:
        where = f"{session}/{subpath}" if subpath else session
        settings.fail(f"transcript {where} not found in project {key['project_key']}")
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    settings.out.print(_transcript_grid(entries))


# -- delete and prune --------------------------------------------------------------------------


@app.command("delete")
def delete_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a session with its subagent transcripts."""
    settings = _settings(ctx)
    key = settings.session_key(session)

    async def describe(store: MongoSessionStore) -> tuple[int, list[str]]:
        subkeys = await store.list_subkeys(
            {"project_key": key["project_key"], "session_id": session}
        )
        return await store.size(key), subkeys

    entries, subkeys = _with_store(settings, describe)
    if not entries and not subkeys:
        settings.fail(f"session {session} not found in project {key['project_key']}")
    question = (
        f"Delete session {session} of project {key['project_key']} "
        f"({entries} entries, {len(subkeys)} subagent transcripts)?"
    )
    if not yes and not typer.confirm(question):
        settings.fail("aborted")
    _with_store(settings, lambda store: store.delete(key))
    settings.out.print(f"deleted session {session}", highlight=False)


@app.command("prune")
def prune_sessions(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Idle time, a number with a unit s/m/h/d/w, e.g. 30d.")
    ],
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
) -> None:
    """Delete whole sessions (in every project) idle for longer than --older-than."""
    settings = _settings(ctx)
    try:
        idle_for = _parse_duration(older_than)
    except ValueError as exc:
        settings.fail(str(exc), EXIT_USAGE)
    sessions = _with_store(settings, lambda store: store.prune_inactive(idle_for, dry_run=dry_run))
    verb = "would delete" if dry_run else "deleted"
    table = _table(f"{verb} {len(sessions)} sessions", "project", "session")
    for item in sorted(sessions, key=lambda s: (s["project_key"], s["session_id"])):
        table.add_row(item["project_key"], item["session_id"])
    settings.out.print(table)


# -- maintenance -------------------------------------------------------------------------------


@app.command("ensure-indexes")
def ensure_indexes(ctx: typer.Context) -> None:
    """Create the store's indexes (for deployments that run with create_indexes=False)."""
    settings = _settings(ctx)

    async def run(store: MongoSessionStore) -> str:
        await store.ensure_indexes()
        return f"{store.hosts}/{store.database}"

    where = _with_store(settings, run, create_indexes=False)
    settings.out.print(f"indexes ensured on {escape(where)}", highlight=False)


@app.command("stats")
def stats(
    ctx: typer.Context,
    largest: Annotated[int, typer.Option(min=0, help="How many of the largest to list.")] = 10,
) -> None:
    """Count sessions, transcripts, entries and bytes; list the largest sessions."""
    settings = _settings(ctx)
    totals = _with_store(settings, lambda store: store.stats(largest=largest))
    summary = _table(f"store {settings.database}", "", "total")
    summary.add_row("sessions", str(totals.sessions))
    summary.add_row("transcripts", str(totals.transcripts))
    summary.add_row("entries", str(totals.entries))
    summary.add_row("size", _human_bytes(totals.bytes))
    settings.out.print(summary)
    if totals.largest:
        table = _table("largest sessions", "project", "session", "entries", "size", "modified")
        for item in totals.largest:
            table.add_row(
                item["project_key"],
                item["session_id"],
                str(item["entries"]),
                _human_bytes(item["bytes"]),
                _local_time(item["mtime"]),
            )
        settings.out.print(table)
