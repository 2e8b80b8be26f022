"""Print docs/heroku-assumptions.md, generated from `swapbot.heroku.assumptions`:

    python -m swapbot.heroku.assumptions_doc > docs/heroku-assumptions.md

A module of its own so that `-m` does not run `assumptions` a second time (the package imports it).
"""

from __future__ import annotations

import sys

from .assumptions import render_markdown


def main() -> None:
    # Bytes, so the page comes out UTF-8 whatever the locale of the shell.
    sys.stdout.buffer.write(render_markdown().encode("utf-8"))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
