"""docs/heroku-assumptions.md is generated from swapbot/heroku/assumptions.py and kept committed."""

from __future__ import annotations

import difflib
from pathlib import Path

from swapbot.heroku.assumptions import (
    ASSUMPTIONS,
    DOC_PATH,
    REGENERATE_COMMAND,
    RETRY_NOTE_TITLE,
    render_markdown,
)

ROOT = Path(__file__).resolve().parent.parent


def test_committed_doc_matches_the_generated_one():
    committed = (ROOT / DOC_PATH).read_text(encoding="utf-8")
    generated = render_markdown()
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(),
            generated.splitlines(),
            f"{DOC_PATH} (committed)",
            f"{DOC_PATH} (generated)",
            lineterm="",
            n=1,
        )
        shown = "\n".join(list(diff)[:40])
        raise AssertionError(
            f"{DOC_PATH} is out of date with swapbot/heroku/assumptions.py. "
            f"Regenerate it from the repository root:\n\n    {REGENERATE_COMMAND}\n\n{shown}"
        )


def test_every_assumption_has_a_summary_and_a_public_page():
    for item in ASSUMPTIONS:
        assert item.summary and "\n" not in item.summary, item.key
        assert item.see, item.key
        assert all(page.url.startswith("https://") for page in item.see), item.key


def test_the_doc_cites_only_public_pages():
    text = render_markdown()
    assert "§" not in text
    assert "shared/" not in text
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_the_note_on_repeated_requests_stays_on_the_page():
    # It is placed before a named entry; renaming that entry must not drop the note.
    assert f"## {RETRY_NOTE_TITLE}" in render_markdown()
