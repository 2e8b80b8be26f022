"""The rules the web process applies before it acknowledges: parsing, who may do what, and
Slack's escaping of command text. Pure functions, no I/O."""

from __future__ import annotations

import random
import shlex

import pytest

from swapbot import commands, config
from swapbot.commands import grammar
from swapbot.slack import access
from swapbot.slack.app import unescape

SETTINGS = config.load_settings(
    {
        "SWAPBOT_CHANNEL": "C0SWAP",
        "SWAPBOT_OPERATORS": "U0OPERATOR",
        "SWAPBOT_APPROVERS": "U0APPROVER,U0OPERATOR",
    }
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("launch", "unknown or malformed subcommand"),
        ("status now", "status takes no arguments"),
        ("approve", "usage: approve REQUEST_ID"),
        ("ledger undo x", "usage: ledger done KEY"),
        ("request-approval preflight", "only these steps need an approval: pause, delete-old"),
        ("pause --break-glass", "--break-glass needs a value"),
        ("pause --break-glass ''", "--break-glass needs a reason"),
        ("plan new --swap-id x", "the following arguments are required: --new-schema"),
        ("plan new --swap-id x --new-schema s --mappings 'Acc;", "could not read the command"),
        ("plan set colour=blue", "expected KEY=VALUE with KEY one of mappings"),
        ("plan set", "nothing to change"),
        ("plan destroy", "unknown action 'destroy'"),
        ("stop-writes acme-prod extra", "takes at most the app's name"),
    ],
)
def test_bad_input_gets_a_message_that_says_what_is_wrong(text, message):
    with pytest.raises(commands.UsageError) as err:
        commands.parse(text)
    assert message in str(err.value)


def test_commands_parse_with_options_anywhere_and_slack_quotes():
    cmd = commands.parse("pause --break-glass “the approver is on a plane” --dry-run")
    assert (cmd.name, cmd.break_glass, cmd.dry_run) == ("pause", "the approver is on a plane", True)
    assert cmd.kind == "operate" and cmd.long_running and not cmd.changes_something
    assert commands.parse("plan show").kind == "read"
    assert commands.parse("").kind == "help"
    plan = commands.parse("plan new --swap-id s1 --new-schema sf2 --mappings 'Account:Rating'")
    assert plan.plan_fields["mappings"] == {"Account": ["Rating"]}
    with pytest.raises(commands.UsageError, match="schema"):
        commands.new_plan(
            commands.parse("plan new --swap-id s1 --new-schema 'x;drop' --mappings Account"),
            app="acme-prod",
            actor="U0OPERATOR",
        )


def test_plain_commands_split_without_shlex_into_the_words_shlex_would_find(monkeypatch):
    # Words with no quote and no backslash are split on blanks alone (shlex costs an ack more
    # than anything else it does); anything else still goes through shlex.
    alphabet = "ab9-=#|&<>:,.\u00e9 \t\r\n\x0b\x0c\xa0\u2003"
    rng = random.Random(6)
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert commands.split(text) == shlex.split(text), repr(text)
    assert commands.split("  status\t--json\n") == ["status", "--json"]
    assert commands.split("a\xa0b") == ["a\xa0b"]  # shlex does not split on a no-break space

    def no_shlex(text: str) -> list[str]:
        raise AssertionError(f"shlex read {text!r}")

    monkeypatch.setattr(grammar.shlex, "split", no_shlex)
    assert commands.parse("status").name == "status"
    for quoting in ("pause --break-glass 'x'", 'a"b', "a\\b", "pause --break-glass \u201cx\u201d"):
        with pytest.raises(AssertionError, match="shlex read"):
            commands.split(quoting)


def test_slack_escaping_is_undone_before_parsing():
    text = "plan new --swap-id s1 --authorizer <@U0PERSON|pat> --mappings 'A:B' &amp; &lt;x&gt;"
    assert unescape(text) == "plan new --swap-id s1 --authorizer U0PERSON --mappings 'A:B' & <x>"
    assert unescape("see <https://example.com|example.com> in <#C0SWAP|swaps>") == (
        "see https://example.com in C0SWAP"
    )
    assert unescape("a &amp;&amp; b") == "a && b" and unescape("status --json") == "status --json"


@pytest.mark.parametrize(
    ("text", "user", "channel", "refused"),
    [
        ("status", "U0READER", "C0SWAP", None),
        ("plan show", "U0READER", "C0SWAP", None),
        ("history", "U0READER", "C0OTHER", "shared in <#C0SWAP>"),
        ("status", "U0OPERATOR", "D0DIRECT", None),  # people who run swaps may ask anywhere
        ("help", "U0NOBODY", "C0OTHER", None),
        ("preflight", "U0READER", "C0SWAP", "Only operators may run `preflight`"),
        ("preflight", "U0OPERATOR", "C0OTHER", "run only in <#C0SWAP>"),
        ("preflight", "U0OPERATOR", "C0SWAP", None),
        ("approve pause-1", "U0READER", "C0SWAP", "Only approvers may approve"),
        ("approve pause-1", "U0APPROVER", "C0SWAP", None),
        ("confirm settings", "U0APPROVER", "C0SWAP", None),
        ("status --as U0OPERATOR", "U0READER", "C0SWAP", "`--as` is for the terminal"),
        ("pause --break-glass 'on fire'", "U0APPROVER", "C0SWAP", "Only operators"),
    ],
)
def test_who_may_do_what(text, user, channel, refused):
    reason = access.refusal(commands.parse(text), user, channel, SETTINGS)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason
