"""The Typer application behind ``session-store-mongo``: global options and commands.

Usage::

    from typer.testing import CliRunner
    from session_store_mongo.cli.app import app

    result = CliRunner().invoke(app, ["--url", url, "list", "--project", "p", "--json"])

Global options go before or after the command (``CommandGroup``). Every command that touches
the store runs all its work on one store (one client) through ``Settings.run``; commands that
only read never create indexes. Errors end as one line on stderr: exit 1 for store and
connection failures, exit 2 for usage errors. Everything printed that came from the store or
the user is shown literally (``literal``), and passwords never appear. An encrypted store needs
``--encryption-config`` (a JSON file of ``EncryptionSettings``), which also enables ``forget``
and ``rotate-keys``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from session_store_protocol import StoreRegistry
from session_store_protocol.errors import (
    InvalidStoreOptionsError,
    KeyDestroyedError,
    SummariesUnavailableError,
)
from session_store_protocol.summaries import load_fold_in_background
from session_store_protocol.types import SessionKey, SessionListSubkeysKey

from ..client import Connection
from ..follow import DEFAULT_RECONNECT_TIMEOUT
from ..layout import validate_database_name
from ..migrate import DEFAULT_BATCH as MIGRATE_BATCH
from ..migrate import MigrationReport, migrate
from ..predecessor import PREDECESSOR, PREDECESSOR_COLLECTION, PREDECESSOR_DATABASE
from ..reader import StoredEntry
from ..redact import password_of_url
from ..store import DEFAULT_COLLECTION_PREFIX, DEFAULT_DATABASE, Forgotten, MongoSessionStore
from .group import CommandGroup
from .importer import Importer, ImportReport
from .layout import ExportFile, ExportStaging, LayoutError, Transcript, find_transcripts
from .literal import literal, literal_json, visible
from .render import (
    TranscriptPages,
    import_summary,
    interrupted_import,
    kinds_tables,
    local_time,
    migration_summary,
    pruned_table,
    sessions_table,
    stats_tables,
    title_of,
    transcript_grid,
)
from .settings import (
    EXIT_FAILURE,
    EXIT_USAGE,
    Settings,
    parse_duration,
    parse_reconnect_timeout,
    parse_timeout,
)

__all__ = ["app"]

DEFAULT_BATCH = 500
DEFAULT_JOBS = 2
"""Groups or files imported at once. Each job is a group of up to 1 MB of files (or one bigger
file in batches), so two keep the server busy: one is prepared while the other is at the
server. More contended on the local test server: measured side by side on SecantusDB, 8 jobs
took 1.5x as long as 2 for 1,000 small sessions (the server burning twice the CPU for the same
writes), and no less for 8 files of 2,000 entries. Against a remote server, where each round
trip waits on the network, more may pay (``--jobs``); not measured here."""
_MAX_ERRORS_SHOWN = 20

app = typer.Typer(
    cls=CommandGroup,
    name="session-store-mongo",
    help="Import, inspect, export and prune Claude Code transcripts in a MongoDB session store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
        typer.Option(
            help="Project key (default: the current directory's, as the SDK derives it; "
            "import takes it from where each file sits)."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            parser=parse_timeout,
            help="Seconds to wait for the server, 0.1 to 3600 (default: the store's).",
        ),
    ] = None,
    create_indexes: Annotated[
        bool,
        typer.Option(
            help="Let writing commands create missing indexes (reading ones never do); "
            "--no-create-indexes for users without the createIndex privilege."
        ),
    ] = True,
    encryption_config: Annotated[
        Path | None,
        typer.Option(
            envvar="MONGO_ENCRYPTION_CONFIG",
            show_envvar=True,
            dir_okay=False,
            help="JSON file of encryption settings (kms_providers, key_vault_namespace, ...) "
            "for an encrypted store.",
        ),
    ] = None,
) -> None:
    """Import, inspect, export and prune Claude Code transcripts in a MongoDB session store."""
    ctx.obj = Settings(
        url=url,
        database=database,
        collection_prefix=collection_prefix,
        project=project,
        timeout=timeout,
        create_indexes=create_indexes,
        encryption_config=encryption_config,
        command=ctx.invoked_subcommand or "session-store-mongo",
    )


def _check_can_confirm(settings: Settings, yes: bool) -> None:
    """Refuse, before connecting, to delete without ``--yes`` when no terminal can answer."""
    if not yes and not sys.stdin.isatty():
        settings.fail("stdin is not a terminal to confirm on: pass --yes", EXIT_USAGE)


async def _ask(settings: Settings, question: str) -> None:
    """Ask on the terminal (in a thread: the store's client keeps its event loop); exit on no."""
    if not await asyncio.to_thread(typer.confirm, visible(question)):
        settings.fail("aborted")


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
            help="JSONL transcripts, session or subagents directories, project directories "
            "(~/.claude/projects/<project>) or the projects root. Project, session and "
            "subagent come from where each file sits, as the SDK derives them.",
        ),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Entries per append.")] = DEFAULT_BATCH,
    jobs: Annotated[
        int, typer.Option(min=1, max=64, help="Transcripts imported at once.")
    ] = DEFAULT_JOBS,
) -> None:
    """Import Claude Code transcripts; importing again stores nothing twice."""
    # Every main transcript's summary is folded by the SDK: its import overlaps finding and
    # reading the files and the first round trips, instead of stalling the first fold.
    load_fold_in_background()
    settings = _settings(ctx)
    transcripts: list[Transcript] = []
    try:
        for path in paths:
            transcripts.extend(find_transcripts(path, project=settings.project))
    except LayoutError as exc:
        settings.fail(str(exc), EXIT_USAGE)
    total = sum(t.path.stat().st_size for t in transcripts)
    importer: Importer | None = None

    async def run(store: MongoSessionStore) -> ImportReport:
        nonlocal importer
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
                progress.console.print(literal(message, style="red"), soft_wrap=True)

        importer = Importer(
            store,
            batch_size=batch_size,
            on_progress=lambda size: progress.advance(task, size),
            on_error=show_error,
        )
        await store.connect()  # indexes once, before the jobs race to create them
        with progress:
            await importer.transcripts(transcripts, jobs=jobs)
        return importer.report

    report = settings.run(
        run,
        writes=True,
        interrupted=lambda: interrupted_import(
            importer.report if importer else ImportReport(), len(transcripts)
        ),
    )
    hidden = len(report.errors) - _MAX_ERRORS_SHOWN
    if hidden > 0:
        settings.err.print(Text(f"… and {hidden} more errors", style="red"), soft_wrap=True)
    settings.out.print(import_summary(report))
    if report.errors:
        raise typer.Exit(EXIT_FAILURE)


# -- export ------------------------------------------------------------------------------------


@app.command("export")
def export_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    out: Annotated[Path, typer.Option(file_okay=False, help="Directory to write <project>/ into.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace files that exist (otherwise refused).")
    ] = False,
) -> None:
    """Write a session (and its subagents) back in Claude Code's on-disk layout."""
    settings = _settings(ctx)
    if str(out) == "-":  # stdout, to most tools: a tree of files cannot go there
        settings.fail(
            "--out - is not supported: export writes a directory of files (the session, its "
            "subagents and their .meta.json); `show SESSION --json` prints the entries",
            EXIT_USAGE,
        )
    main_key = settings.session_key(session)

    async def run(store: MongoSessionStore) -> list[ExportFile]:
        subpaths = await store.list_subkeys(
            {"project_key": main_key["project_key"], "session_id": session}
        )
        with ExportStaging(out) as staging:
            for key in [main_key, *(settings.session_key(session, sub) for sub in subpaths)]:
                async with contextlib.aclosing(store.iter_entries(key)) as items:
                    await staging.transcript(key, (item.entry async for item in items))
            existing = staging.existing()
            if existing and not force:
                more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
                settings.fail(f"{existing[0]}{more} exist: pass --force to replace them")
            return list(staging.commit())

    try:
        files = settings.run(
            run, interrupted=lambda: "export interrupted: no file was written or replaced"
        )
    except LayoutError as exc:
        settings.fail(str(exc))
    if not files:
        settings.fail(f"session {session} not found in project {main_key['project_key']}")
    for file in files:
        settings.print_line(f"wrote {file.path} ({file.entries} entries)")


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

    rows = settings.run(run)
    if as_json:
        typer.echo(literal_json(rows, indent=2))
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
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Then print new entries as they are appended, until Ctrl-C."
        ),
    ] = False,
    subagents: Annotated[
        bool,
        typer.Option(
            "--subagents",
            help="Include the subagent transcripts, each entry labelled with its agent "
            '(with --json: {"subpath", "seq", "entry"} per line).',
        ),
    ] = False,
    reconnect_timeout: Annotated[
        float | None,
        typer.Option(
            parser=parse_reconnect_timeout,
            metavar="SECONDS",
            help="With --follow: how long to keep reconnecting to a server that went away, "
            f"from its first failure, before exiting 1 (default {DEFAULT_RECONNECT_TIMEOUT:g}; "
            "0: not at all).",
        ),
    ] = None,
) -> None:
    """Print a transcript: messages, tool calls and shortened tool results.

    A message longer than 10,000 characters is cut there, with a line saying how much was
    left out: --json prints every entry whole.
    """
    settings = _settings(ctx)
    key = settings.session_key(session, subpath)
    if subagents and subpath is not None:
        settings.fail("--subagents shows a whole session: leave out --subpath", EXIT_USAGE)
    if reconnect_timeout is not None and not follow:
        settings.fail("--reconnect-timeout is for --follow: add it or leave it out", EXIT_USAGE)
    if follow:
        _follow_session(
            settings,
            key,
            as_json=as_json,
            subagents=subagents,
            reconnect_timeout=(
                DEFAULT_RECONNECT_TIMEOUT if reconnect_timeout is None else reconnect_timeout
            ),
        )
        return
    if subagents:
        _show_session_with_subagents(settings, key, as_json=as_json)
        return

    async def run(store: MongoSessionStore) -> bool:
        """Print the entries as they stream in; return whether there were any."""
        pages = TranscriptPages()
        found = False
        async with contextlib.aclosing(store.iter_entries(key)) as items:
            async for item in items:
                found = True
                await asyncio.sleep(0)  # where Ctrl-C lands (see ExportStaging.transcript)
                if as_json:
                    typer.echo(literal_json(item.entry))
                elif (page := pages.add(item.entry)) is not None:
                    settings.out.print(page)
        if (page := pages.rest()) is not None:
            settings.out.print(page)
        return found

    if not settings.run(run, interrupted=_show_interrupted):
        where = f"{session}/{subpath}" if subpath else session
        settings.fail(f"transcript {where} not found in project {key['project_key']}")


def _show_interrupted() -> str:
    return "show interrupted: the transcript was printed in part"


def _print_item(settings: Settings, item: StoredEntry, *, as_json: bool, labelled: bool) -> None:
    """Print one entry as ``show`` does; labelled with its transcript for ``--subagents``."""
    if as_json:
        line = {"subpath": item.subpath, "seq": item.seq, "entry": item.entry}
        typer.echo(literal_json(line if labelled else item.entry))
        return
    settings.out.print(transcript_grid([item.entry], subpath=item.subpath))
    settings.out.file.flush()  # a pipe is block-buffered: a live view must not wait


def _show_session_with_subagents(settings: Settings, key: SessionKey, *, as_json: bool) -> None:
    """``show --subagents``: the main transcript, then each subagent's, every entry labelled."""

    async def run(store: MongoSessionStore) -> bool:
        transcripts = [key, *await _subagent_keys(store, key)]
        found = False
        for transcript in transcripts:
            async with contextlib.aclosing(store.iter_entries(transcript)) as items:
                async for item in items:
                    found = True
                    await asyncio.sleep(0)  # where Ctrl-C lands (see ExportStaging.transcript)
                    _print_item(settings, item, as_json=as_json, labelled=True)
        return found

    if not settings.run(run, interrupted=_show_interrupted):
        settings.fail(f"session {key['session_id']} not found in project {key['project_key']}")


def _follow_session(
    settings: Settings,
    key: SessionKey,
    *,
    as_json: bool,
    subagents: bool,
    reconnect_timeout: float,
) -> None:
    """``show --follow``: what is stored, then each new entry, until Ctrl-C or a delete.

    A server out of reach for ``reconnect_timeout`` seconds ends it with exit 1.
    """

    async def run(store: MongoSessionStore) -> bool:
        if not await store.size(key) and not (subagents and await _subagent_keys(store, key)):
            settings.err.print(
                literal(f"nothing stored yet in {key['session_id']}: waiting (Ctrl-C to stop)"),
                style="dim",
            )
        follower = store.follow(key, include_subkeys=subagents, reconnect_timeout=reconnect_timeout)
        async with follower:
            async for item in follower:
                _print_item(settings, item, as_json=as_json, labelled=subagents)
        return follower.deleted

    try:
        deleted = settings.run(run)
    except KeyboardInterrupt:  # Ctrl-C is how a follow ends: a clean exit
        raise typer.Exit(0) from None
    if deleted:
        settings.err.print(literal(f"session {key['session_id']} was deleted"), style="dim")


async def _subagent_keys(store: MongoSessionStore, key: SessionKey) -> list[SessionKey]:
    """The keys of the session's subagent transcripts."""
    project_key, session_id = key["project_key"], key["session_id"]
    subpaths = await store.list_subkeys({"project_key": project_key, "session_id": session_id})
    return [
        SessionKey(project_key=project_key, session_id=session_id, subpath=subpath)
        for subpath in subpaths
    ]


# -- delete and prune --------------------------------------------------------------------------


@app.command("delete")
def delete_session(
    ctx: typer.Context,
    session: Annotated[str, typer.Argument(help="Session id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a session with its subagent transcripts (asks first, on a terminal)."""
    settings = _settings(ctx)
    key = settings.session_key(session)
    _check_can_confirm(settings, yes)

    async def run(store: MongoSessionStore) -> None:
        try:
            entries = await store.size(key)
        except KeyDestroyedError:  # forgotten: its ciphertext is still there to delete
            entries = -1
        subkeys = await store.list_subkeys(
            {"project_key": key["project_key"], "session_id": session}
        )
        if not entries and not subkeys:
            settings.fail(f"session {session} not found in project {key['project_key']}")
        content = (
            "forgotten: its data key is destroyed"
            if entries < 0
            else f"{entries} entries, {len(subkeys)} subagent transcripts"
        )
        question = f"Delete session {session} of project {key['project_key']} ({content})?"
        if not yes:
            await _ask(settings, question)
        await store.delete(key)

    settings.run(run, writes=True)
    settings.print_line(f"deleted session {session}")


@app.command("prune")
def prune_sessions(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option(help="Idle time, a number with a unit s/m/h/d/w, e.g. 30d.")
    ],
    dry_run: Annotated[bool, typer.Option(help="Only list what would be deleted.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete whole sessions (in every project) idle for longer than --older-than.

    Lists them and asks first, on a terminal; only the sessions listed are deleted, and any
    written to meanwhile is kept.
    """
    settings = _settings(ctx)
    try:
        idle_for = parse_duration(older_than)
    except ValueError as exc:
        settings.fail(str(exc), EXIT_USAGE)
    if not dry_run:
        _check_can_confirm(settings, yes)

    async def run(store: MongoSessionStore) -> list[SessionListSubkeysKey]:
        if yes or dry_run:
            return await store.prune_inactive(idle_for, dry_run=dry_run)
        idle = await store.prune_inactive(idle_for, dry_run=True)
        if not idle:
            return idle
        settings.out.print(pruned_table(idle, dry_run=True))
        await _ask(settings, f"Delete these {len(idle)} sessions?")
        return await store.prune_inactive(idle_for, only=idle)

    pruned = settings.run(run, writes=not dry_run)
    settings.out.print(pruned_table(pruned, dry_run=dry_run))


# -- maintenance -------------------------------------------------------------------------------


@app.command("ensure-indexes")
def ensure_indexes(ctx: typer.Context) -> None:
    """Create the store's indexes (for deployments that run with create_indexes=False)."""
    settings = _settings(ctx)

    async def run(store: MongoSessionStore) -> str:
        await store.ensure_indexes()
        return f"{store.hosts}/{store.database}"

    where = settings.run(run)
    settings.print_line(f"indexes ensured on {where}")


@app.command("forget")
def forget_project(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Destroy the data key of --project: its transcripts become unreadable everywhere, for good.

    --project must be given: forget never defaults to the current directory's project.
    """
    settings = _settings(ctx)
    if settings.encryption_config is None:
        settings.fail("forget needs an encrypted store: pass --encryption-config", EXIT_USAGE)
    if settings.project is None:
        settings.fail("forget needs --project: the project whose data key to destroy", EXIT_USAGE)
    project_key = settings.project
    _check_can_confirm(settings, yes)

    async def run(store: MongoSessionStore) -> Forgotten:
        if not yes:
            sessions = await store.list_sessions(project_key)
            await _ask(
                settings,
                f"Destroy the data key of project {project_key}? Its {len(sessions)} sessions "
                "become unreadable for good, in every replica and backup. This cannot be undone.",
            )
        return await store.forget(project_key)

    done = settings.run(run, writes=True)
    if not done.keys and done.forgotten_at is not None:
        settings.fail(
            f"project {project_key} was already forgotten on "
            f"{done.forgotten_at:%Y-%m-%d %H:%M:%S} UTC: its data key is gone, nothing changed"
        )
    if not done.keys:
        settings.fail(
            f"project {project_key} has no data key: nothing of it was encrypted, nothing "
            "changed (delete removes plaintext transcripts)"
        )
    settings.print_line(
        f"destroyed {done.keys} data key(s) of project {project_key}: "
        f"{done.transcripts} transcripts are unreadable for good"
    )
    if done.stored_in_clear:
        sessions = ", ".join(dict.fromkeys(key["session_id"] for key in done.stored_in_clear))
        settings.print_line(
            f"{len(done.stored_in_clear)} transcripts of {project_key} were stored without "
            "encryption and stay readable: delete them with `session-store-mongo delete "
            f"SESSION` (sessions {sessions})"
        )


@app.command("rotate-keys")
def rotate_keys(ctx: typer.Context) -> None:
    """Rewrap the data keys (of --project, if given; else all) under the configured master key.

    The encryption config's kms_provider and master_key name the new master key; its
    kms_providers must still hold the old one. No transcript is rewritten.
    """
    settings = _settings(ctx)
    if settings.encryption_config is None:
        settings.fail("rotate-keys needs an encrypted store: pass --encryption-config", EXIT_USAGE)
    only = settings.project
    count = settings.run(lambda store: store.rotate_keys(only), writes=True)
    settings.print_line(f"rewrapped {count} data keys")


@app.command("stats")
def stats(
    ctx: typer.Context,
    largest: Annotated[int, typer.Option(min=0, help="How many of the largest to list.")] = 10,
) -> None:
    """Count sessions, transcripts, entries and bytes; list the largest sessions."""
    settings = _settings(ctx)
    totals = settings.run(lambda store: store.stats(largest=largest))
    for table in stats_tables(settings.database, totals):
        settings.out.print(table)


# -- migrate -----------------------------------------------------------------------------------


@app.command("migrate")
def migrate_predecessor(
    ctx: typer.Context,
    from_url: Annotated[
        str | None,
        typer.Option(help="URL of the server holding the old sessions (default: --url)."),
    ] = None,
    from_database: Annotated[
        str, typer.Option(help="Database holding the old sessions.")
    ] = PREDECESSOR_DATABASE,
    from_collection: Annotated[
        str, typer.Option(help="Collection holding the old sessions.")
    ] = PREDECESSOR_COLLECTION,
    dry_run: Annotated[
        bool, typer.Option(help="Only report sessions, entries, bytes and problems.")
    ] = False,
    drop_source: Annotated[
        bool, typer.Option(help="Delete the old sessions after a complete, verified run.")
    ] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="Entries per append.")] = MIGRATE_BATCH,
) -> None:
    """Copy the sessions of @open-gitagent/session-store-mongo 0.2 into the store, verified."""
    settings = _settings(ctx)
    if dry_run and drop_source:
        settings.fail("--drop-source needs a real run, not --dry-run", EXIT_USAGE)
    try:
        validate_database_name(from_database)
    except InvalidStoreOptionsError as exc:
        settings.fail(f"--from-database: {exc}", EXIT_USAGE)

    async def run(store: MongoSessionStore) -> MigrationReport:
        own = from_url is None or from_url == settings.url
        if own:  # one client for both ends, its password scrubbed as the store's is
            secret = password_of_url(settings.url or "")
            secrets = (secret,) if secret else ()
            source_connection = Connection(store.hosts, secrets=secrets, client=store.client)
        else:
            assert from_url is not None
            source_connection = Connection.from_url(from_url, settings.client_options())
        source = source_connection.client[from_database][from_collection]
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=settings.err,
            disable=not settings.err.is_terminal,
        )
        try:
            with source_connection.translate_errors(f"reading {from_database}.{from_collection}"):
                if not await source.database.list_collection_names(
                    filter={"name": from_collection}
                ):  # a typo in --from-*: a table of zeros would read as "all done"
                    settings.fail(
                        f"the source collection {from_database}.{from_collection} does not exist "
                        "on that server: check --from-database and --from-collection"
                    )
                total = await source.estimated_document_count()
                first = progress.add_task("reading" if dry_run else "copying", total=total)
                phases = {"copy": first}
                if not dry_run:
                    phases["verify"] = progress.add_task("verifying", total=total)
                with progress:
                    return await migrate(
                        source,
                        store,
                        dry_run=dry_run,
                        drop_source=drop_source,
                        batch_size=batch_size,
                        on_document=lambda phase: progress.advance(phases[phase]),
                    )
        finally:
            if not own:
                await source_connection.aclose()

    report = settings.run(
        run,
        writes=not dry_run,
        interrupted=lambda: (
            "migrate dry run interrupted: nothing was written"
            if dry_run
            else "migrate interrupted: run it again to resume (what was copied is kept and is "
            "not copied twice)"
        ),
    )
    for problem in report.problems[:_MAX_ERRORS_SHOWN]:
        blocking = problem.kind in ("malformed", "diverged", "mismatch")
        line = f"{problem.kind}: _id {problem.document}: {problem.detail}"
        settings.err.print(literal(line, style="red" if blocking else "yellow"), soft_wrap=True)
    hidden = len(report.problems) - _MAX_ERRORS_SHOWN
    if hidden > 0:
        settings.err.print(Text(f"… and {hidden} more problems", style="red"), soft_wrap=True)
    settings.out.print(migration_summary(report))
    if not report.documents:
        settings.print_line(
            f"the source collection {from_database}.{from_collection} holds no sessions: "
            "nothing to migrate"
        )
    if drop_source and not report.complete:
        settings.print_error(
            f"the {PREDECESSOR} sessions were left in place: the run was incomplete"
        )
    if not report.complete:
        raise typer.Exit(EXIT_FAILURE)
