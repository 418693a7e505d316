"""README stays true: its Python snippets name nothing undefined, its links work off GitHub."""

from __future__ import annotations

import builtins
import re
import symtable
from importlib.metadata import metadata

import pytest

from tests.support import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)
PROJECT_URLS = dict(
    url.split(", ", 1) for url in metadata("session-store-mongo").get_all("Project-URL") or []
)
"""The package metadata's links (``[project.urls]``), as the package index shows them."""


def undefined_names(code: str) -> set[str]:
    """Global names a snippet reads but neither defines, imports nor gets from builtins."""
    top = symtable.symtable(code, "README", "exec")
    defined = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read: set[str] = set()
    tables = [top]
    while tables:
        table = tables.pop()
        read |= {
            s.get_name()
            for s in table.get_symbols()
            if s.is_referenced() and (s.is_global() or table is top)
        }
        tables.extend(table.get_children())
    return read - defined - set(dir(builtins))


def test_readme_has_python_snippets() -> None:
    """The README's Python examples are found (so the next test checks something)."""
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_snippet_defines_every_name_it_uses(index: int) -> None:
    """A snippet copied into a file runs without NameError: every name it reads is defined."""
    assert undefined_names(SNIPPETS[index]) == set(), SNIPPETS[index]


def test_images_and_links_work_on_the_package_index() -> None:
    """Images and links are absolute (PyPI shows README without the repository's files)."""
    targets = re.findall(r"\]\(([^)#][^)]*)\)", README)
    assert targets
    relative = [target for target in targets if not target.startswith("https://")]
    assert relative == []


def test_images_point_into_this_repository() -> None:
    """Each image comes from the repository named by the package metadata's Source URL."""
    source = PROJECT_URLS["Source"].removeprefix("https://github.com/")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images
    for image in images:
        assert image.startswith(f"https://raw.githubusercontent.com/{source}/"), image
        path = image.removeprefix(f"https://raw.githubusercontent.com/{source}/").split("/", 1)[1]
        assert (REPO_ROOT / path).is_file(), path
