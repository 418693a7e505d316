"""The ``session-store-mongo`` command: operate on the transcripts in a MongoDB store.

Usage (install the extra first: ``pip install 'session-store-mongo[cli]'``)::

    export MONGO_URL=mongodb://localhost:27017
    session-store-mongo import ~/.claude/projects          # every project, idempotent
    session-store-mongo --project -home-dev-app list        # newest sessions first
    session-store-mongo show 6f1c2d3e-...                   # the transcript, readable
    session-store-mongo export 6f1c2d3e-... --out backup/   # back to Claude Code's layout
    session-store-mongo prune --older-than 90d --dry-run
    session-store-mongo --help                              # every command and option

This module only checks that Typer and Rich are installed; the package's other modules need them:
``app`` (the commands and their global options), ``importer`` (transcripts into the store),
``render`` (what ``list``, ``show``, ``stats`` and the rest print) and ``layout`` (Claude Code's
files on disk). The library never imports this package.
"""

from __future__ import annotations

import sys

__all__ = ["INSTALL_HINT", "main"]

INSTALL_HINT = "session-store-mongo CLI needs extra deps: pip install 'session-store-mongo[cli]'"


def main() -> None:
    """Run the CLI; exit 2 with the install command when Typer or Rich is missing."""
    try:
        import rich  # noqa: F401  (imported to check the extra is installed)
        import typer  # noqa: F401
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2) from None
    from .app import app

    app(prog_name="session-store-mongo")
