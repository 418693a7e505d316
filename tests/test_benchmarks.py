"""The benchmark script runs end to end against a live server (quick mode, tiny sizes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT


def _correct_cells(markdown: str) -> list[str]:
    """Every cell of every table's ``correct`` column."""
    cells: list[str] = []
    column: int | None = None
    for line in markdown.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        row = [cell.strip() for cell in line.strip("|").split(" | ")]
        if column is None:
            column = row.index("correct") if "correct" in row else -1
        elif column >= 0 and not line.startswith("|---"):
            cells.append(row[column])
    return cells


@pytest.mark.live
def test_quick_benchmark_writes_table_and_plot_and_loses_nothing(
    mongo_url: str, tmp_path: Path
) -> None:
    """`benchmarks/run.py --quick` writes latest.md and latest.png; every check says correct."""
    script = REPO_ROOT / "benchmarks" / "run.py"
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--url", mongo_url, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "latest.md").read_text(encoding="utf-8")
    assert "### Append latency" in report
    for section in (
        "against a bare find of the same documents",
        "### Commands per append",
        "### list_session_summaries",
        "### A 1,000-entry session",
        "### Import of a tree",
    ):
        assert section in report
    assert "| store (pymongo) |" in report
    assert "| seed design (one doc) | " in report
    assert "### Encryption overhead" in report
    assert "| encrypted store (pymongo) |" in report
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    verdicts = _correct_cells(report)
    assert len(verdicts) >= 3  # two concurrent-writer runs and the import
    assert all(cell.startswith("yes") for cell in verdicts), verdicts
    seed_rows = [line for line in report.splitlines() if line.startswith("| seed design")]
    assert any("failed appending" in row for row in seed_rows)  # the 16 MB limit, as designed


@pytest.mark.live
def test_encrypted_check_script_compares_both_checks_and_they_agree(mongo_url: str) -> None:
    """`benchmarks/encrypted_check.py` prints its table; old and new check agree in each state."""
    sizes = ["--sessions", "30", "--repeats", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.encrypted_check", "--url", mongo_url, *sizes],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = _correct_cells(done.stdout)
    assert verdicts == ["yes"] * 3, done.stdout
