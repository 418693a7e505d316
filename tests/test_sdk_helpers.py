"""The Claude Agent SDK's store-backed session helpers, driven against the Mongo store.

A real Claude Code transcript (tests/fixtures/claude_projects, with a subagent) is imported with
``import_session_to_store`` from a temporary ``CLAUDE_CONFIG_DIR``, then read, renamed, tagged,
forked and deleted through the SDK: on the live server via PyMongo async and via Motor, and
in process on mongomock-motor.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from claude_agent_sdk import (
    SDKSessionInfo,
    delete_session_via_store,
    fork_session_via_store,
    get_session_messages_from_store,
    get_subagent_messages_from_store,
    import_session_to_store,
    list_sessions_from_store,
    list_subagents_from_store,
    rename_session_via_store,
    tag_session_via_store,
)

from session_store_protocol import SessionKey, SessionStore
from tests.support import FIXTURES, StoreFactory

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.parametrize(
        "make_store",
        [
            "mongo-mongomock",
            pytest.param("mongo-live", marks=pytest.mark.live),
            pytest.param("mongo-motor", marks=pytest.mark.live),
        ],
        indirect=True,
    ),
]

# The fixture sessions (see tests/fixtures/make_fixtures.py).
CWD = "/home/dev/acme-webapp"
PROJECT_KEY = "-home-dev-acme-webapp"
MAIN = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
SECOND = "0b6a9a52-7f3d-4e2c-9a1b-5c4d3e2f1a0b"
AGENT = "a1b2c3d"
MAIN_TITLE = "Safari login button fix"
MAIN_PROMPT = "Fix the login form: the submit button does nothing on Safari."
MAIN_MESSAGE_UUIDS = [f"6f1c2d3e-0000-4000-8000-{i:012d}" for i in range(9)]
AGENT_MESSAGE_UUIDS = [f"a1b2c3d00-0000-4000-8000-{i:012d}" for i in range(4)]
MAIN_KEY: SessionKey = {"project_key": PROJECT_KEY, "session_id": MAIN}
AGENT_KEY: SessionKey = {**MAIN_KEY, "subpath": f"subagents/agent-{AGENT}"}


@pytest.fixture
def claude_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLAUDE_CONFIG_DIR holding the fixture projects, where the SDK looks for transcripts."""
    shutil.copytree(FIXTURES / "claude_projects", tmp_path / "projects")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
async def store(make_store: StoreFactory, claude_config: Path) -> SessionStore:
    """A fresh store with both fixture sessions imported, the second one last."""
    fresh = make_store()
    await import_session_to_store(MAIN, fresh)
    await import_session_to_store(SECOND, fresh)
    return fresh


async def listed(store: SessionStore) -> dict[str, SDKSessionInfo]:
    return {info.session_id: info for info in await list_sessions_from_store(store, CWD)}


async def test_import_lands_under_the_project_directory_key(store: SessionStore) -> None:
    """Import keys sessions by the on-disk project directory, the key the SDK reads back."""
    sessions = await store.list_sessions(PROJECT_KEY)
    assert sorted(s["session_id"] for s in sessions) == sorted([MAIN, SECOND])
    assert await store.list_subkeys({"project_key": PROJECT_KEY, "session_id": MAIN}) == [
        f"subagents/agent-{AGENT}"
    ]


async def test_listing_shows_titles_and_first_prompts(store: SessionStore) -> None:
    """list_sessions_from_store returns the custom title, first prompt and branch, newest first."""
    infos = await list_sessions_from_store(store, CWD)
    assert [info.session_id for info in infos] == [SECOND, MAIN]
    main, second = infos[1], infos[0]
    assert (main.custom_title, main.summary, main.first_prompt) == (
        MAIN_TITLE,
        MAIN_TITLE,
        MAIN_PROMPT,
    )
    assert (main.git_branch, main.cwd) == ("feature/login", CWD)
    assert second.custom_title is None
    assert second.summary == second.first_prompt == "What does the deploy script do?"


async def test_messages_come_back_in_conversation_order(store: SessionStore) -> None:
    """get_session_messages_from_store returns the 9 chained messages in order, text intact."""
    messages = await get_session_messages_from_store(store, MAIN, CWD)
    assert [m.uuid for m in messages] == MAIN_MESSAGE_UUIDS
    assert [m.type for m in messages] == ["user", "assistant"] * 4 + ["user"]
    assert {m.session_id for m in messages} == {MAIN}
    assert messages[0].message["content"] == MAIN_PROMPT
    assert messages[-1].message["content"].endswith("naïve café ✓ 日本")


async def test_messages_page_with_limit_and_offset(store: SessionStore) -> None:
    """Paging with limit and offset returns the requested slice of the conversation."""
    page = await get_session_messages_from_store(store, MAIN, CWD, limit=3, offset=6)
    assert [m.uuid for m in page] == MAIN_MESSAGE_UUIDS[6:9]


async def test_subagents_are_listed(store: SessionStore) -> None:
    """list_subagents_from_store finds the imported subagent transcript by its agent id."""
    assert await list_subagents_from_store(store, MAIN, CWD) == [AGENT]
    assert await list_subagents_from_store(store, SECOND, CWD) == []


async def test_subagent_messages_come_back_in_order(store: SessionStore) -> None:
    """get_subagent_messages_from_store returns the subagent's 4 messages in order."""
    messages = await get_subagent_messages_from_store(store, MAIN, AGENT, CWD)
    assert [m.uuid for m in messages] == AGENT_MESSAGE_UUIDS
    assert messages[0].message["content"] == "Find buttons that should submit"
    assert messages[-1].message["content"][0]["text"].startswith("Found 2 more")


async def test_rename_changes_the_listed_title(store: SessionStore) -> None:
    """rename_session_via_store appends a title that the listing then reports."""
    await rename_session_via_store(store, MAIN, "  Fix submit buttons in all forms ", CWD)
    main = (await listed(store))[MAIN]
    assert main.custom_title == main.summary == "Fix submit buttons in all forms"
    assert main.first_prompt == MAIN_PROMPT


async def test_tag_shows_in_the_listing(store: SessionStore) -> None:
    """tag_session_via_store sets a tag the listing reports, on that session only."""
    await tag_session_via_store(store, MAIN, "bugfix", CWD)
    infos = await listed(store)
    assert infos[MAIN].tag == "bugfix"
    assert infos[SECOND].tag is None


async def test_clearing_a_tag_removes_it_from_the_listing(store: SessionStore) -> None:
    """tag_session_via_store(None) clears the tag set before it."""
    await tag_session_via_store(store, MAIN, "bugfix", CWD)
    await tag_session_via_store(store, MAIN, None, CWD)
    assert (await listed(store))[MAIN].tag is None


async def test_fork_copies_the_conversation_into_a_new_session(store: SessionStore) -> None:
    """fork_session_via_store writes a new session with the same messages under fresh uuids."""
    fork = await fork_session_via_store(store, MAIN, CWD)
    assert fork.session_id not in (MAIN, SECOND)
    original = await get_session_messages_from_store(store, MAIN, CWD)
    copied = await get_session_messages_from_store(store, fork.session_id, CWD)
    assert [m.message for m in copied] == [m.message for m in original]
    assert [m.type for m in copied] == [m.type for m in original]
    assert {m.session_id for m in copied} == {fork.session_id}
    assert not {m.uuid for m in copied} & set(MAIN_MESSAGE_UUIDS)
    infos = await listed(store)
    assert infos[fork.session_id].custom_title == f"{MAIN_TITLE} (fork)"
    assert infos[MAIN].custom_title == MAIN_TITLE


async def test_fork_up_to_a_message_keeps_only_the_prefix(store: SessionStore) -> None:
    """A fork up to a message id holds the conversation up to and including that message."""
    fork = await fork_session_via_store(
        store, MAIN, CWD, up_to_message_id=MAIN_MESSAGE_UUIDS[3], title="Branch at the subagent"
    )
    copied = await get_session_messages_from_store(store, fork.session_id, CWD)
    original = await get_session_messages_from_store(store, MAIN, CWD)
    assert [m.message for m in copied] == [m.message for m in original[:4]]
    assert (await listed(store))[fork.session_id].custom_title == "Branch at the subagent"


async def test_delete_removes_the_session_and_its_subagents(store: SessionStore) -> None:
    """delete_session_via_store removes the session and its subagent transcripts, nothing else."""
    await delete_session_via_store(store, MAIN, CWD)
    assert list(await listed(store)) == [SECOND]
    assert await get_session_messages_from_store(store, MAIN, CWD) == []
    assert await list_subagents_from_store(store, MAIN, CWD) == []
    assert await get_subagent_messages_from_store(store, MAIN, AGENT, CWD) == []
    assert await store.load(MAIN_KEY) is None
    assert await store.load(AGENT_KEY) is None
    assert len(await get_session_messages_from_store(store, SECOND, CWD)) == 2


async def test_reimport_adds_no_transcript_entries(store: SessionStore) -> None:
    """Re-importing changes no message: every uuid-bearing entry is stored once, in order."""
    before = await store.load(MAIN_KEY) or []
    await import_session_to_store(MAIN, store)
    after = await store.load(MAIN_KEY) or []
    uuids_before = [e["uuid"] for e in before if "uuid" in e]
    assert [e["uuid"] for e in after if "uuid" in e] == uuids_before
    subagent = await store.load(AGENT_KEY) or []
    assert [e["uuid"] for e in subagent if "uuid" in e] == AGENT_MESSAGE_UUIDS
    messages = await get_session_messages_from_store(store, MAIN, CWD)
    assert [m.uuid for m in messages] == MAIN_MESSAGE_UUIDS
    assert (await listed(store))[MAIN].custom_title == MAIN_TITLE


async def test_reimport_repeats_only_the_entries_without_uuid(store: SessionStore) -> None:
    """Entries without a uuid (custom-title, summary) have no identity, so re-import adds them.

    This is the contract (an entry without ``uuid`` is always appended), stated here so that
    a change to it is noticed: the fixture's main transcript has two such lines.
    """
    before = await store.load(MAIN_KEY) or []
    await import_session_to_store(MAIN, store)
    after = await store.load(MAIN_KEY) or []
    without_uuid = [e for e in before if "uuid" not in e]
    assert [e["type"] for e in without_uuid] == ["custom-title", "summary"]
    assert after == before + without_uuid
