"""The packages' doors go one way: each package imports only from the layers below it.

Read from the source (every import, inside functions and TYPE_CHECKING blocks too), so a lazy
import cannot slip a door open. docs/architecture.md draws the same picture in words.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SWAPBOT = Path(__file__).resolve().parent.parent / "swapbot"

# What each part of swapbot may import, besides itself. `swapbot.X` for a module or package X.
ALLOWED: dict[str, set[str]] = {
    "_http": set(),
    "config": set(),
    "logs": {"config"},
    "health": {"config"},
    "heroku": set(),
    "database": set(),
    "sandbox": {"_http", "database"},  # a fake Heroku: reads HC's layout, nothing of the bot
    "swap": {"heroku", "database"},  # the engine: no front end, no settings, no command line
    "probe": {"heroku", "config"},  # Heroku's unconfirmed behaviours, checked live
    # the /hcswap language both front ends speak
    "commands": {"swap", "heroku", "database", "probe"},
    "runtime": {"config", "swap", "heroku"},  # settings in, an engine out
    "jobs": {"config"},  # the queue between the web process and the worker
    "slack": {"_http", "config", "logs", "health", "heroku", "swap", "commands", "runtime", "jobs"},
}
# Above everything: the test seams (which never import the command line) and the command line.
ALLOWED["testing"] = set(ALLOWED) - {"health"}
ALLOWED["cli"] = ALLOWED["testing"] | {"health", "testing"}

# Argument parsing belongs to the command line (and to the /hcswap grammar in commands).
NO_ARGPARSE = ("heroku", "database", "swap", "sandbox", "runtime", "slack")


def _part(path: Path) -> str:
    rel = path.relative_to(SWAPBOT)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _crossings(path: Path) -> set[str]:
    """The parts of swapbot other than its own that a module imports."""
    own = _part(path)
    parts = set()
    for name in _imports(path):
        pieces = name.split(".")
        if pieces[0] != "swapbot" or len(pieces) < 2 or pieces[1] == own:
            continue
        if (SWAPBOT / pieces[1]).is_dir() or (SWAPBOT / f"{pieces[1]}.py").exists():
            parts.add(pieces[1])
    return parts


MODULES = sorted(p for p in SWAPBOT.rglob("*.py") if p.name != "__init__.py" or p.parent != SWAPBOT)


def test_every_part_of_swapbot_has_a_rule():
    parts = {_part(p) for p in MODULES}
    assert parts == set(ALLOWED), "add the new part to ALLOWED and to docs/architecture.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SWAPBOT)))
def test_imports_go_only_through_open_doors(path: Path):
    own = _part(path)
    wrong = _crossings(path) - ALLOWED[own]
    assert not wrong, f"swapbot.{own} must not import swapbot.{', swapbot.'.join(sorted(wrong))}"


@pytest.mark.parametrize(
    "path",
    [p for p in MODULES if _part(p) in NO_ARGPARSE],
    ids=lambda p: str(p.relative_to(SWAPBOT)),
)
def test_only_the_command_line_parses_arguments(path: Path):
    assert "argparse" not in _imports(path), f"{path.name}: argparse belongs in swapbot.cli"


def test_the_rule_catches_a_wrong_door(tmp_path: Path):
    """The check itself works: an engine module that imports Slack is caught."""
    bad = SWAPBOT / "swap" / "_door_probe.py"
    bad.write_text("def f():\n    from swapbot.slack import app\n")
    try:
        assert _crossings(bad) == {"slack"}
        assert "slack" not in ALLOWED["swap"]
    finally:
        bad.unlink()


def test_benches_stand_on_the_installed_package_alone():
    bench = SWAPBOT.parent / "bench"
    for path in bench.glob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text, f"{path.name} edits sys.path"
        assert not any(n.split(".")[0] == "tests" for n in _imports(path)), (
            f"{path.name} imports from tests/: move what it shares to swapbot.testing"
        )


def test_only_documents_in_the_repository_are_cited():
    """Comments and docs cite the repository or a public page, never private notes."""
    private = ("reference " + "§", "shared/" + "reference", "DESIGN" + ".md")
    root = SWAPBOT.parent
    for path in [*root.glob("swapbot/**/*.py"), *root.glob("docs/*.md"), *root.glob("*.md"),
                 *root.glob("tests/*.py"), *root.glob("bench/*.py")]:  # fmt: skip
        text = path.read_text()
        for word in private:
            assert word not in text, f"{path.relative_to(root)} cites {word!r}"


def test_the_readme_and_the_makefile_agree():
    """The quickstart's two commands, and every target the Makefile declares, exist."""
    root = SWAPBOT.parent
    makefile = (root / "Makefile").read_text()
    phony = next(line for line in makefile.splitlines() if line.startswith(".PHONY:"))
    for target in phony.split(":", 1)[1].split():
        assert f"\n{target}:" in makefile, f"make {target} is declared but not defined"
    readme = (root / "README.md").read_text()
    assert "make demo" in readme and "make test " in readme
    ci = (root / ".ci" / "run").read_text()
    assert "make test" in ci
