"""The folders are the architecture: imports run one way, and each folder of ``bots/`` says its job.

Read from the source with ``ast`` (nothing is imported), so a forbidden import fails here even where no test
happens to exercise it: adapters never reach storage, ``agent`` and ``storage`` import neither each other nor
``bots``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = ("bots/discord", "bots/slack", "bots/console")
BOTS_FOLDERS = ("seam", "router", "tools", "files", "replies", "workers", "operator", "discord", "slack", "console")
MAX_MODULES_PER_FOLDER = 14


def imported_packages(path: Path) -> Iterator[str]:
    """The top-level package of every absolute import in one module."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [*((adapter, {"storage"}) for adapter in ADAPTERS), ("agent", {"storage", "bots"}), ("storage", {"agent", "bots"})],
)
def test_imports_run_one_way(folder: str, forbidden: set[str]) -> None:
    crossing = {
        f"{path.relative_to(ROOT)} imports {package}"
        for path in modules(folder)
        for package in imported_packages(path)
        if package in forbidden
    }
    assert not crossing


def test_the_seam_imports_no_other_folder_of_bots() -> None:
    reaching = {
        f"{path.relative_to(ROOT)} imports {node.module}"
        for path in modules("bots/seam")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.startswith("bots.")
        and not node.module.startswith("bots.seam")
    }
    assert not reaching


@pytest.mark.parametrize("folder", BOTS_FOLDERS)
def test_each_bots_folder_states_its_job_and_stays_small(folder: str) -> None:
    path = ROOT / "bots" / folder
    docstring = ast.get_docstring(ast.parse((path / "__init__.py").read_text(encoding="utf-8")))
    assert docstring, f"bots/{folder}/__init__.py has no docstring saying what the folder is for"
    assert len(list(path.glob("*.py"))) - 1 <= MAX_MODULES_PER_FOLDER


def test_only_the_entry_modules_sit_at_the_top_of_bots() -> None:
    assert sorted(p.name for p in (ROOT / "bots").glob("*.py")) == [
        "__init__.py",
        "__main__.py",
        "app.py",
        "cli.py",
        "config.py",
    ]
