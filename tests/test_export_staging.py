"""An export's files are streamed aside and put in place together, or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from session_store_mongo.cli.layout import ExportStaging
from session_store_protocol import SessionKey

MAIN: SessionKey = {"project_key": "proj", "session_id": "s1"}
AGENT: SessionKey = {**MAIN, "subpath": "subagents/agent-a"}


async def _stream(entries: list[Any], *, fail_after: int | None = None) -> AsyncIterator[Any]:
    for n, entry in enumerate(entries):
        if n == fail_after:
            raise OSError("the server went away")
        yield entry


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


async def test_files_appear_only_on_commit(tmp_path: Path) -> None:
    """Nothing is visible at the destinations before ``commit``; then each file, whole."""
    entries = [{"type": "user", "uuid": f"u{n}", "text": "é"} for n in range(3)]
    with ExportStaging(tmp_path) as staging:
        await staging.transcript(MAIN, _stream(entries))
        assert not (tmp_path / "proj" / "s1.jsonl").exists()
        files = list(staging.commit())
    assert [(f.path, f.entries) for f in files] == [(tmp_path / "proj" / "s1.jsonl", 3)]
    assert (tmp_path / "proj" / "s1.jsonl").read_text(encoding="utf-8") == "".join(
        f'{{"type":"user","uuid":"u{n}","text":"é"}}\n' for n in range(3)
    )
    assert _files(tmp_path) == ["proj", "proj/s1.jsonl"]


async def test_a_failing_stream_leaves_nothing_behind(tmp_path: Path) -> None:
    """A stream that fails halfway leaves no file and no directory it created."""
    (tmp_path / "kept").mkdir()
    entries = [{"type": "user", "uuid": f"u{n}"} for n in range(5)]

    async def export() -> None:
        with ExportStaging(tmp_path) as staging:
            await staging.transcript(MAIN, _stream(entries))
            await staging.transcript(AGENT, _stream(entries, fail_after=2))

    with pytest.raises(OSError, match="went away"):
        await export()
    assert _files(tmp_path) == ["kept"]


async def test_refusal_leaves_existing_files_untouched(tmp_path: Path) -> None:
    """``existing`` names a destination already there; leaving without commit keeps it as is."""
    local = tmp_path / "proj" / "s1.jsonl"
    local.parent.mkdir()
    local.write_text("mine\n", encoding="utf-8")
    with ExportStaging(tmp_path) as staging:
        await staging.transcript(MAIN, _stream([{"type": "user"}]))
        await staging.transcript(AGENT, _stream([{"type": "user"}]))
        assert staging.existing() == [local]
    assert local.read_text(encoding="utf-8") == "mine\n"
    assert _files(tmp_path) == ["proj", "proj/s1.jsonl"]


async def test_subagent_metadata_becomes_its_sidecar(tmp_path: Path) -> None:
    """The last ``agent_metadata`` entry is the sidecar (without ``type``); others are lines."""
    entries = [
        {"type": "agent_metadata", "agentType": "old"},
        {"type": "user", "uuid": "u1"},
        {"type": "agent_metadata", "agentType": "Explore"},
    ]
    with ExportStaging(tmp_path) as staging:
        await staging.transcript(AGENT, _stream(entries))
        files = {f.path.name: f.entries for f in staging.commit()}
    assert files == {"agent-a.jsonl": 1, "agent-a.meta.json": 1}
    folder = tmp_path / "proj" / "s1" / "subagents"
    assert (folder / "agent-a.meta.json").read_text(encoding="utf-8") == '{"agentType":"Explore"}'


async def test_an_empty_transcript_creates_nothing(tmp_path: Path) -> None:
    """No entries, no file and no directory."""
    with ExportStaging(tmp_path) as staging:
        await staging.transcript(MAIN, _stream([]))
        assert list(staging.commit()) == []
    assert _files(tmp_path) == []
