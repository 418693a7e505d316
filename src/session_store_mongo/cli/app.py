"""The Typer application behind ``session-store-mongo``: global options and commands.

Usage::

    from typer.testing import CliRunner
    from session_store_mongo.cli.app import app

    result = CliRunner().invoke(app, ["--url", url, "--project", "p", "list", "--json"])

Every command that touches the store opens one ``MongoSessionStore`` (one client) inside
``asyncio.run``, does all its work on it, and closes it on the way out. Errors end as one red
line on stderr: exit 1 for store and connection failures, exit 2 for usage errors. Passwords are
scrubbed from everything printed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from session_store_protocol import StoreRegistry
from session_store_protocol.errors import (
    InvalidStoreOptionsError,
    SessionStoreError,
    SummariesUnavailableError,
)
from session_store_protocol.types import SessionKey

from ..builder import validate_collection_prefix, validate_database_name
from ..redact import password_of_url, redact_text
from ..store import DEFAULT_COLLECTION_PREFIX, DEFAULT_DATABASE, MongoSessionStore
from .importer import Importer, ImportReport
from .layout import (
    LayoutError,
    Transcript,
    find_transcripts,
    project_key_for_directory,
    transcript_path,
    write_entries,
)
from .render import (
    import_summary,
    kinds_tables,
    local_time,
    pruned_table,
    sessions_table,
    stats_tables,
    title_of,
    transcript_grid,
)

__all__ = ["app"]

T = TypeVar("T")

EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_BATCH = 500
_MAX_ERRORS_SHOWN = 20
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

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
    collection_prefix: str
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
        validate_collection_prefix(settings.collection_prefix)
        store = MongoSessionStore(
            url=url,
            database=settings.database,
            collection_prefix=settings.collection_prefix,
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
    collection_prefix: Annotated[
        str,
        typer.Option(
            envvar="MONGO_COLLECTION_PREFIX",
            show_envvar=True,
            help="Prefix of the store's collection names ('' for version 0.1's).",
        ),
    ] = DEFAULT_COLLECTION_PREFIX,
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
    ctx.obj = Settings(
        url=url,
        database=database,
        collection_prefix=collection_prefix,
        project=project,
        timeout=timeout,
    )


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
    for table in kinds_tables(StoreRegistry()):
        settings.out.print(table)


# -- import ------------------------------------------------------------------------------------


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
        task = progress.add_task("import", total=total)
        shown = 0

        def show_error(message: str) -> None:
            nonlocal shown
            shown += 1
            if shown <= _MAX_ERRORS_SHOWN:
                progress.console.print(f"[red]{escape(message)}[/]", highlight=False)

        importer = Importer(
            store,
            batch_size=batch_size,
            on_progress=lambda size: progress.advance(task, size),
            on_error=show_error,
        )
        with progress:
            for transcript in transcripts:
                await importer.transcript(transcript)
        return importer.report

    report = _with_store(settings, run)
    hidden = len(report.errors) - _MAX_ERRORS_SHOWN
    if hidden > 0:
        settings.err.print(f"[red]… and {hidden} more errors[/]")
    settings.out.print(import_summary(report))
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
        written = _with_store(settings, run, create_indexes=False)
    except LayoutError as exc:
        settings.fail(str(exc))
    if not written:
        settings.fail(f"session {session} not found in project {main_key['project_key']}")
    for path, count in written:
        settings.out.print(f"wrote {path} ({count} entries)", highlight=False, soft_wrap=True)


# -- list and show -----------------------------------------------------------------------------


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
                "modified": local_time(item["mtime"]),
                "entries": await store.size(settings.session_key(item["session_id"])),
                "title": title_of(summaries.get(item["session_id"], {})),
            }
            for item in listed
        ]

    rows = _with_store(settings, run, create_indexes=False)
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    settings.out.print(sessions_table(project, rows))


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
    entries = _with_store(settings, lambda store: store.load(key), create_indexes=False)
    if entries is None:
        where = f"{session}/{subpath}" if subpath else session
        settings.fail(f"transcript {where} not found in project {key['project_key']}")
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry, ensure_ascii=False))
        return
    settings.out.print(transcript_grid(entries))


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

    async def run(store: MongoSessionStore) -> None:
        entries = await store.size(key)
        subkeys = await store.list_subkeys(
            {"project_key": key["project_key"], "session_id": session}
        )
        if not entries and not subkeys:
            settings.fail(f"session {session} not found in project {key['project_key']}")
        question = (
            f"Delete session {session} of project {key['project_key']} "
            f"({entries} entries, {len(subkeys)} subagent transcripts)?"
        )
        if not yes and not await asyncio.to_thread(typer.confirm, question):
            settings.fail("aborted")
        await store.delete(key)

    _with_store(settings, run)
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
    sessions = _with_store(
        settings,
        lambda store: store.prune_inactive(idle_for, dry_run=dry_run),
        create_indexes=not dry_run,
    )
    settings.out.print(pruned_table(sessions, dry_run=dry_run))


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
    totals = _with_store(settings, lambda store: store.stats(largest=largest), create_indexes=False)
    for table in stats_tables(settings.database, totals):
        settings.out.print(table)
