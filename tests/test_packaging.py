"""The published metadata: links a package index shows, extras users install, the command."""

from __future__ import annotations

from importlib.metadata import entry_points, metadata

DISTRIBUTION = metadata("session-store-mongo")


def test_metadata_links_homepage_source_issues_changelog_and_docs() -> None:
    """The package index gets every link a user looks for, all pointing at the repository."""
    urls = dict(url.split(", ", 1) for url in DISTRIBUTION.get_all("Project-URL") or [])
    assert set(urls) == {"Homepage", "Documentation", "Source", "Issues", "Changelog"}
    assert all(url.startswith(urls["Source"]) for url in urls.values())


def test_only_user_extras_are_published() -> None:
    """Extras are what users install; development tools are a dependency group, not an extra."""
    extras = set(DISTRIBUTION.get_all("Provides-Extra") or [])
    assert extras == {"summaries", "motor", "cli", "encryption"}


def test_console_script_runs_the_cli_package() -> None:
    """``session-store-mongo`` resolves to the CLI package's ``main``."""
    [script] = [e for e in entry_points(group="console_scripts") if e.name == "session-store-mongo"]
    from session_store_mongo.cli import main

    assert script.load() is main
