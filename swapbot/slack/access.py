"""Who may do what from Slack: pure rules over the settings, checked before anything is queued.

Operators run steps, approvers approve or deny, anyone in the swap channel may read; steps and
approvals only from the swap channel, where the team sees them. A button is checked as the
command it stands for (the Approve button as `approve REQUEST_ID`), by the same rules.
"""

from __future__ import annotations

from swapbot.commands import Command
from swapbot.config import Settings


def refusal(cmd: Command, user: str, channel: str, settings: Settings) -> str | None:
    """Why `user` may not run `cmd` from `channel`, or None when they may."""
    home = settings.swapbot_channel
    operators = set(settings.swapbot_operators)
    approvers = set(settings.swapbot_approvers)
    if cmd.actor:
        return "`--as` is for the terminal; in Slack, swapbot already knows who you are."
    if cmd.kind == "help":
        return None
    if cmd.kind == "read":
        if channel == home or user in operators | approvers:
            return None
        return f"Swap status is shared in <#{home}>: ask there."
    if channel != home:
        return f"Swap commands run only in <#{home}>, where the team can see them."
    if cmd.kind == "approve":
        if user in approvers:
            return None
        return f"Only approvers may {cmd.name}, and you are not one of them (SWAPBOT_APPROVERS)."
    if cmd.name in ("confirm", "ledger") and user in operators | approvers:
        return None
    if user not in operators:
        return (
            f"Only operators may run `{cmd.name}`, and you are not one of them "
            "(SWAPBOT_OPERATORS). You can still read `status`, `plan show` and `history`."
        )
    return None
