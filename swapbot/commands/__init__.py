"""The `/hcswap` subcommands, shared by every front end: parse the words, then run them.

`parse` is pure and quick: the Slack web process calls it before acknowledging, so bad input
gets its answer at once and nothing is queued. `execute` runs a parsed command on the engine;
the terminal calls it in its own process, `swapbot worker` calls it for Slack. Neither front
end holds rules of its own: what a command means is decided here and in the engine.
"""

from swapbot.commands.grammar import (
    HELP,
    STEP_USAGE,
    USAGE,
    Command,
    UsageError,
    new_plan,
    parse,
    split,
    usage,
)
from swapbot.commands.run import (
    Reply,
    execute,
    plan_show,
    render_plan,
    render_status,
    status,
)

__all__ = [
    "HELP",
    "STEP_USAGE",
    "USAGE",
    "Command",
    "Reply",
    "UsageError",
    "execute",
    "new_plan",
    "parse",
    "plan_show",
    "render_plan",
    "render_status",
    "split",
    "status",
    "usage",
]
