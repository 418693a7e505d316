"""The operator CLI on an encrypted store: --encryption-config, forget and rotate-keys."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import MAIN, NO_SERVER_URL, PROJECT_DIR, LiveCli, invoke, on_terminal
from tests.support import MASTER_KEY

SECRET = base64.b64encode(MASTER_KEY).decode()


def encryption_config(cli: LiveCli, path: Path, **keys: bytes) -> Path:
    """Write an encryption settings file (key vault in the CLI's database); return its path.

    With several keys, the last one wraps new data keys (and rotation rewraps under it).
    """
    providers = {name: {"key": base64.b64encode(key).decode()} for name, key in keys.items()}
    settings = {"kms_providers": providers, "key_vault_namespace": f"{cli.database}.__keyVault"}
    if len(keys) > 1:
        settings["kms_provider"] = list(keys)[-1]
    path.write_text(json.dumps(settings), encoding="utf-8")
    return path


@pytest.fixture
def encrypted(mongo_url: str, tmp_path: Path) -> Iterator[tuple[LiveCli, list[str]]]:
    """The fixture project imported into an encrypted store; the CLI and its config option."""
    cli = LiveCli(mongo_url)
    config = encryption_config(cli, tmp_path / "encryption.json", local=MASTER_KEY)
    option = ["--encryption-config", str(config)]
    result = cli(*option, "import", str(PROJECT_DIR))
    assert result.exit_code == 0, result.output
    yield cli, option
    cli.drop()


@pytest.mark.live
def test_forget_asks_then_makes_the_project_unreadable(
    encrypted: tuple[LiveCli, list[str]],
) -> None:
    """Forget asks first; once confirmed, show says the key was destroyed and stats counts it."""
    cli, option = encrypted
    declined = on_terminal(*cli.global_options(), *option, "forget", answer="n\n")
    assert declined.returncode == 1, declined.stderr
    assert "Destroy the data key of project" in declined.stdout
    assert "aborted" in declined.stderr
    assert cli(*option, "show", MAIN).exit_code == 0
    done = cli(*option, "forget", "--yes")
    assert done.exit_code == 0, done.output
    assert "destroyed 1 data key(s)" in done.stdout
    assert "3 transcripts are unreadable" in done.stdout
    shown = cli(*option, "show", MAIN)
    assert shown.exit_code == 1
    assert "destroyed by forget" in shown.stderr
    assert json.loads(cli(*option, "list", "--json").stdout) == []
    assert re.search(r"forgotten \(data key destroyed\)\W+2\b", cli(*option, "stats").stdout)
    again = cli(*option, "forget", "--yes")
    assert again.exit_code == 1
    assert re.search(r"already forgotten on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", again.stderr)
    assert "nothing of it was encrypted" not in again.stderr
    deleted = cli(*option, "delete", MAIN, "--yes")
    assert deleted.exit_code == 0, deleted.output
    outputs = [declined.stdout, declined.stderr, done.output, shown.output, again.output]
    assert all(SECRET not in output for output in outputs)


@pytest.mark.live
def test_rotate_keys_moves_data_keys_to_the_new_master_key(
    encrypted: tuple[LiveCli, list[str]], tmp_path: Path
) -> None:
    """rotate-keys rewraps under the config's kms_provider; the old master key is then useless."""
    cli, old = encrypted
    new_key = os.urandom(96)
    both = encryption_config(cli, tmp_path / "both.json", local=MASTER_KEY, **{"local:2": new_key})
    rotated = cli("--encryption-config", str(both), "rotate-keys")
    assert rotated.exit_code == 0, rotated.output
    assert "rewrapped 1 data keys" in rotated.stdout
    new_only = encryption_config(cli, tmp_path / "new.json", **{"local:2": new_key})
    assert cli("--encryption-config", str(new_only), "show", MAIN).exit_code == 0
    stale = cli(*old, "show", MAIN)
    assert stale.exit_code == 1
    assert SECRET not in stale.output


@pytest.mark.live
def test_encrypted_store_without_settings_says_so(encrypted: tuple[LiveCli, list[str]]) -> None:
    """Reading an encrypted store without --encryption-config is one line naming the option."""
    cli, _ = encrypted
    result = cli("show", MAIN)
    assert result.exit_code == 1
    assert "--encryption-config" in result.stderr
    assert "Traceback" not in result.output
    assert cli("forget", "--yes").exit_code == 2


def test_forget_never_defaults_to_the_current_project(tmp_path: Path) -> None:
    """Forget without an explicit --project is a usage error, before any server is asked."""
    config = tmp_path / "encryption.json"
    config.write_text(json.dumps({"kms_providers": {"local": {"key": "AA=="}}}), "utf-8")
    result = invoke("--url", NO_SERVER_URL, "--encryption-config", str(config), "forget", "--yes")
    assert result.exit_code == 2
    assert "--project" in result.stderr
