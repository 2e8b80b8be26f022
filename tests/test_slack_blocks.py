"""Block Kit rendering: pure functions, checked against Slack's limits and slack_sdk's models."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block

from swapbot.slack import blocks as B
from swapbot.swap.approvals import ApprovalRequest
from swapbot.swap.events import Event
from swapbot.swap.plan import Plan
from swapbot.swap.store import LockInfo
from swapbot.swap.views import Status

NOW = 1_700_000_133.0  # 2023-11-14 22:15:33 UTC
OUTAGE_START = 1_700_000_000.0  # 2m 13s before NOW


def at(epoch: float, seconds: bool = True) -> str:
    """A time as the channel shows it: a Slack date token, its fallback in UTC."""
    fmt, shown = ("{time_secs}", "%H:%M:%S") if seconds else ("{time}", "%H:%M")
    moment = datetime.fromtimestamp(epoch, UTC)
    return f"<!date^{int(epoch)}^{fmt}|{moment.strftime('%Y-%m-%d ' + shown)} UTC>"


# -- helpers ---------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_fallback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """A renderer that broke a limit logs and sends a bare message instead: a failure here."""
    yield
    assert not [r for r in caplog.records if r.name == B.__name__], caplog.text


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    return list(B._texts(blocks))


def alltext(rendered: tuple[str, list[dict[str, Any]]]) -> str:
    text, blocks = rendered
    return "\n".join([text, *texts(blocks)])


def mrkdwn_objects(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            found.append(node)
        for value in node.values():
            found.extend(mrkdwn_objects(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(mrkdwn_objects(item))
    return found


def valid(rendered: tuple[str, list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    """Every output must pass our limits, slack_sdk's models, and be plain JSON."""
    text, blocks = rendered
    assert isinstance(text, str) and 0 < len(text) <= B.MAX_FALLBACK
    B.check_limits(blocks, text)
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.to_dict()  # raises SlackObjectFormationError on a violation
    assert json.loads(json.dumps(blocks)) == blocks
    for obj in mrkdwn_objects(blocks):
        assert obj["verbatim"] is True, obj
    return text, blocks


def mapping(obj: str, state: str = "DATA_SYNCED", **kw: Any) -> dict[str, Any]:
    base = {"object": obj, "state": state, "db": 1200, "sf": 1200, "pending": 0, "errors": 0}
    return base | {"progress": None} | kw


def plan() -> dict[str, Any]:
    return {
        "swap_id": "acme-2026-12-01",
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "new_schema": "salesforce2",
        "mappings": {"Account": ["Rating__c"], "Contact": []},
    }


def a_plan(**changes: Any) -> Plan:
    return Plan.model_validate(plan() | changes)


def unchecked_plan(**changes: Any) -> Plan:
    """A plan with values the grammar refuses: rendering must stay safe whatever it holds."""
    return Plan.model_construct(**(a_plan().model_dump() | changes))


def holder(runner: str = "worker.1", since: str = "2023-11-14T22:13:20.000Z") -> LockInfo:
    return LockInfo(runner=runner, fence=3, since=since, since_epoch=NOW - 133, ttl_ms=30_000)


def status_doc(**changes: Any) -> Status:
    doc: dict[str, Any] = {
        "app": "acme-prod",
        "connections": [
            {
                "addon": "hc1",
                "addon_state": "provisioned",
                "state": "IDLE",
                "schema": "salesforce",
                "mappings": [
                    mapping("Account", pending=3),
                    mapping("Contact", "INITIAL", db=520, sf=1000, progress=52.0),
                    mapping("Lead", "BULK_LOAD_ERROR", errors=2),
                ],
            },
            {"addon": "hc2", "error": "Heroku Connect answered 503 Service Unavailable"},
        ],
        "plan": a_plan(),
        "fingerprint": "ab12cd34",
        "steps": [
            {"name": "preflight", "phase": "prep", "status": "done"},
            {"name": "create-addon", "phase": "prep", "status": "skipped"},
            {"name": "wait-sync", "phase": "prep", "status": "running"},
            {"name": "pause", "phase": "cutover", "status": "pending", "approval": True},
        ],
        "current_step": "wait-sync",
        "approvals": [request(expires_epoch=NOW + 700)],
        "ledger": [
            {"key": "leftover:account", "what": "drop salesforce.account", "owner": "U0OWNER"},
            {"key": "done", "what": "already done", "owner": "x", "done": True, "done_by": "x"},
        ],
        "backlog": {"rows": 1234, "oldest_seconds": 3.5},
        "outage": {"started_epoch": OUTAGE_START, "ended_epoch": None},
        "holder": holder(),
        "bot_in_channel": True,
    }
    # Validated like a snapshot read back from Redis; a plan given as a model stays as it is.
    view = Status.model_validate({k: v for k, v in (doc | changes).items() if k != "plan"})
    return view.model_copy(update={"plan": (doc | changes)["plan"]})


def many_mappings(n: int, prefix: str) -> list[dict[str, Any]]:
    """n mappings: 3 in error, 17 loading (progress 90% down to 10%), the rest in sync."""
    rows = []
    for i in range(n):
        if i < 3:
            rows.append(mapping(f"{prefix}Err{i}", "SYNC_ERROR", errors=i + 1))
        elif i < 20:
            rows.append(mapping(f"{prefix}Load{i}", "INITIAL_IMPORT", progress=float(100 - i * 5)))
        else:
            rows.append(mapping(f"{prefix}Obj{i}"))
    return rows


# -- small helpers ---------------------------------------------------------------------------
def test_escape_replaces_ampersand_first():
    assert B.escape("a & <b> &amp;") == "a &amp; &lt;b&gt; &amp;amp;"
    assert B.escape(None) == ""


def test_mention_only_for_user_ids():
    assert B.mention("U0OPERATOR") == "<@U0OPERATOR>"
    assert B.mention("W12AB") == "<@W12AB>"
    assert B.mention("alice") == "alice"
    assert B.mention("<!channel>") == "&lt;!channel&gt;"
    assert B.mention("u0lower") == "u0lower"


def test_duration_and_bar():
    assert B.duration(45.9) == "45s"
    assert B.duration(133) == "2m 13s"
    assert B.duration(242) == "4m 02s"
    assert B.duration(3720) == "1h 02m"
    assert B.duration(-5) == "0s"
    assert B.duration(None) == "?"
    assert B.bar(52.0) == "▓▓▓▓▓░░░░░ 52%"
    assert B.bar(99.9) == "▓▓▓▓▓▓▓▓▓░ 99%"
    assert B.bar(100) == "▓▓▓▓▓▓▓▓▓▓ 100%"
    assert B.bar(250, width=4) == "▓▓▓▓ 100%"
    assert B.bar(None) == "░░░░░░░░░░ 0%"


def test_check_limits_names_each_violation():
    ok = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    B.check_limits([ok])
    with pytest.raises(ValueError, match="51 blocks"):
        B.check_limits([ok] * 51)
    with pytest.raises(ValueError, match="not unique"):
        B.check_limits([ok | {"block_id": "a"}, ok | {"block_id": "a"}])
    with pytest.raises(ValueError, match="header text"):
        B.check_limits([{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}])
    with pytest.raises(ValueError, match="section text"):
        B.check_limits([{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}])
    with pytest.raises(ValueError, match="11 fields"):
        B.check_limits([{"type": "section", "fields": [{"type": "mrkdwn", "text": "f"}] * 11}])
    with pytest.raises(ValueError, match="context needs"):
        B.check_limits([{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}])
    big = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 2500}}
    with pytest.raises(ValueError, match="12500 characters of block text"):
        B.check_limits([big] * 5)
    with pytest.raises(ValueError, match="fallback text"):
        B.check_limits([ok], "t" * 3001)


def test_a_message_breaking_the_limits_is_replaced_by_its_fallback(caplog):
    header = {"type": "header", "text": {"type": "plain_text", "text": "h" * 200}}
    text, blocks = B._finish("x", "the fallback &lt;", [header], NOW)
    assert text == "the fallback &lt;"
    assert blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    ]
    assert "broke Slack's limits" in caplog.text
    caplog.clear()


# -- status ----------------------------------------------------------------------------------
def test_status_lists_a_small_swap():
    text, blocks = valid(B.status_message(status_doc(), now=NOW))
    body = "\n".join(texts(blocks))
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "Heroku Connect swap — acme-2026-12-01"
    assert "*acme-prod* · hc1 (salesforce) → hc2 (salesforce2)" in body
    assert "2 mappings: Account (+1 field), Contact" in body
    assert "plan fingerprint `ab12cd34`" in body
    assert "*Step:* wait-sync (running) · 2 of 4 steps done" in body
    assert f":rotating_light: outage running 2m 13s (since {at(OUTAGE_START)})" in body
    assert ":inbox_tray: write backlog: 1,234 rows, oldest 3s" in body
    assert f":lock: in progress on worker.1 since {at(NOW - 133)}" in body
    expiry = at(NOW + 700, seconds=False)
    assert f":raised_hand: `pause-1` *pause* asked by <@U0OPERATOR> — expires {expiry}" in body
    # Each mapping of a small connection, with its state exactly as given.
    assert "*hc1* · add-on provisioned · connection IDLE · schema salesforce · 3 mappings" in body
    assert "• Account · DATA_SYNCED · db 1,200 · sf 1,200 · pending 3" in body
    assert "• Contact · INITIAL · db 520 · sf 1,000 · ▓▓▓▓▓░░░░░ 52%" in body
    assert "• Lead · BULK_LOAD_ERROR · db 1,200 · sf 1,200 · *errors 2*" in body
    assert "*hc2* · :warning: could not read it: Heroku Connect answered 503" in body
    assert "• drop salesforce.account — owner <@U0OWNER>" in body
    assert "already done" not in body
    assert "… and" not in body  # everything was shown
    assert "invite the bot" not in body
    assert blocks[-1]["elements"][0]["text"] == f"updated {at(NOW)}"
    assert text == (
        "Heroku Connect swap — acme-2026-12-01 · step wait-sync (2/4 done) · "
        f"outage running 2m 13s (since {at(OUTAGE_START)}) · 1 approval pending"
    )


def test_status_outage_over_expired_approval_and_missing_bot():
    doc = status_doc(
        outage={"started_epoch": OUTAGE_START, "ended_epoch": OUTAGE_START + 242},
        approvals=[request(requester="alice", expires_epoch=1)],
        bot_in_channel=False,
    )
    _, blocks = valid(B.status_message(doc, now=NOW))
    body = "\n".join(texts(blocks))
    assert f":stopwatch: outage 4m 02s, ended {at(OUTAGE_START + 242)}" in body
    assert "outage running" not in body
    assert "*pause* asked by alice — expired" in body
    assert "invite the bot with `/invite @swapbot`" in body


def test_status_without_plan():
    doc = Status(app="acme-prod", message="no plan yet: create one with `plan new`", connections=[])
    text, blocks = valid(B.status_message(doc, now=NOW))
    assert blocks[0]["text"]["text"] == "Heroku Connect — acme-prod"
    assert "*acme-prod* · no plan yet: create one with `plan new`" in texts(blocks)
    assert text == "Heroku Connect — acme-prod: no plan yet: create one with `plan new`"


def test_status_summarises_300_mappings_within_limits():
    doc = status_doc(
        connections=[
            {"addon": "hc1", "state": "IDLE", "schema": "s1", "mappings": many_mappings(150, "A")},
            {"addon": "hc2", "state": "IDLE", "schema": "s2", "mappings": many_mappings(150, "B")},
        ]
    )
    _, blocks = valid(B.status_message(doc, now=NOW))
    body = "\n".join(texts(blocks))
    assert "DATA_SYNCED 130 · INITIAL_IMPORT 17 · SYNC_ERROR 3" in body
    # Errors first (most errors first), then loads by least progress; synced ones only counted.
    assert body.index("AErr2") < body.index("AErr0") < body.index("ALoad19 ")
    assert body.index("ALoad19 ") < body.index("ALoad3 ")
    assert "• ALoad19 · INITIAL_IMPORT · db 1,200 · sf 1,200 · ░░░░░░░░░░ 5%" in body
    assert "AObj20" not in body and "BObj20" not in body
    listed = sum(1 for line in body.splitlines() if line.startswith(("• A", "• B")))
    assert listed == 40  # 20 per connection need attention
    more = blocks[-2]["elements"][0]["text"]
    assert more == "… and 260 more — full detail: `heroku run swapbot hcswap status --json`"


def test_status_caps_what_needs_attention_and_counts_the_rest():
    rows = [mapping(f"Err{i:03}", "SYSTEM_ERROR", errors=1) for i in range(300)]
    doc = status_doc(connections=[{"addon": "hc1", "state": "IDLE", "mappings": rows}])
    _, blocks = valid(B.status_message(doc, now=NOW, detail_hint="hcswap status --json"))
    body = "\n".join(texts(blocks))
    assert "SYSTEM_ERROR 300" in body
    assert "• Err019 ·" in body and "• Err020 ·" not in body
    assert "… and 280 more — full detail: `hcswap status --json`" in body


def test_status_escapes_names_and_does_not_mention():
    evil = "<!channel> & <@U123>"
    doc = status_doc(
        connections=[
            {"addon": "hc1", "mappings": [mapping("Account"), mapping(evil, "DATA_SYNCED")]},
            {"addon": "hc2", "error": "boom <!here> @everyone #general https://x.test"},
        ],
        ledger=[{"key": "k", "what": evil, "owner": evil}],
    )
    rendered = valid(B.status_message(doc, now=NOW))
    everything = alltext(rendered)
    assert "• &lt;!channel&gt; &amp; &lt;@U123&gt; · DATA_SYNCED" in everything
    assert "boom &lt;!here&gt; @everyone #general https://x.test" in everything
    assert "<!channel>" not in everything and "<@U123>" not in everything
    assert "<!here>" not in everything


def test_status_truncates_long_names_in_the_header():
    doc = status_doc(plan=unchecked_plan(swap_id="s" * 400, app="a" * 400))
    _, blocks = valid(B.status_message(doc, now=NOW))
    header = blocks[0]["text"]["text"]
    assert len(header) == 150 and header.startswith("Heroku Connect swap — sss")
    assert header.endswith("…")
    _, blocks = valid(B.status_message(Status(app="x" * 300), now=NOW))
    assert len(blocks[0]["text"]["text"]) == 150


def test_status_masks_credentials_in_errors():
    doc = status_doc(
        connections=[
            {"addon": "hc2", "error": "cannot reach postgres://u:hunter2@db.example:5432/d"}
        ]
    )
    body = alltext(valid(B.status_message(doc, now=NOW)))
    assert "hunter2" not in body
    assert "postgres://***@db.example:5432/d" in body


def test_status_holds_limits_for_hostile_input():
    huge = "&<>" * 400
    rows = [mapping(huge + str(i), huge, db=10**12, pending=7, errors=3) for i in range(40)]
    doc = status_doc(
        plan=unchecked_plan(mappings={huge + str(i): [huge] * 50 for i in range(50)}),
        fingerprint=huge,
        approvals=[request(id=huge, step=huge, requester=huge)] * 30,
        ledger=[{"key": huge, "what": huge, "owner": huge}] * 30,
        holder=holder(runner=huge, since=huge),
        connections=[{"addon": huge, "state": huge, "schema": huge, "mappings": rows}] * 60,
        current_step=huge,
    )
    _, blocks = valid(B.status_message(doc, now=NOW, detail_hint=huge))
    assert "more" in blocks[-2]["elements"][0]["text"]


@pytest.mark.parametrize("seed", range(25))
def test_status_survives_odd_values(seed):
    """Whatever a view may hold (empty, negative, not a number, hostile text), the card holds
    Slack's limits. Values of the wrong type never get this far: the view refuses them."""
    rnd = random.Random(seed)
    texts_ = ["", "x", "<!channel>", "&<>" * 200, "2023-13-99", "U0ALICE", " \n "]
    numbers = [0, -3.5, float("nan"), float("inf"), 10**15, 1e-9]

    def text() -> str:
        return rnd.choice(texts_)

    def number() -> float:
        return rnd.choice(numbers)

    def maybe(value: Any) -> Any:
        return rnd.choice([None, value])

    rows = [
        {
            "object": text(),
            "state": text(),
            "db": int(rnd.choice([0, -1, 10**12])),
            "sf": int(rnd.choice([0, 5, 10**12])),
            "progress": maybe(number()),
            "errors": maybe(rnd.choice([0, 3])),
        }
        for _ in range(rnd.randint(0, 30))
    ]
    doc = status_doc(
        app=maybe(text()),
        fingerprint=maybe(text()),
        current_step=maybe(text()),
        steps=[
            {"name": text(), "phase": text(), "status": text()} for _ in range(rnd.randint(0, 3))
        ],
        connections=maybe([{"addon": text(), "state": maybe(text()), "mappings": rows}]),
        backlog=maybe(
            {"rows": maybe(rnd.choice([0, -2, 10**9])), "oldest_seconds": maybe(number())}
        ),
        outage=maybe({"started_epoch": number(), "ended_epoch": maybe(number())}),
        approvals=[request(expires_epoch=number(), requester=text())],
        holder=maybe(holder(runner=text(), since=text())),
        plan=rnd.choice([None, a_plan(), unchecked_plan(app=text(), swap_id=text())]),
    )
    valid(B.status_message(doc, now=NOW))
    valid(B.status_message(doc))  # the clock is read when `now` is not given


# -- approvals -------------------------------------------------------------------------------
def request(**changes: Any) -> ApprovalRequest:
    base = {
        "id": "pause-1",
        "swap_id": "acme-2026-12-01",
        "step": "pause",
        "requester": "U0OPERATOR",
        "fingerprint": "ab12cd34",
        "live_digest": "d1",
        "note": "",
        "status": "pending",
        "requested_at": "2023-11-14T22:15:33.000Z",
        "requested_epoch": NOW,
        "expires_at": "2023-11-14T22:30:33.000Z",
        "expires_epoch": NOW + 900,
    }
    return ApprovalRequest.model_validate(base | changes)


def test_approval_message_says_what_who_until_and_how():
    text, blocks = valid(
        B.approval_message(
            request(),
            a_plan(),
            step_summary="pauses hc1 and hc2 and waits until both stop",
            now=NOW,
        )
    )
    body = "\n".join(texts(blocks))
    assert blocks[0]["text"]["text"] == "Approval needed: pause"
    assert "*pause* — pauses hc1 and hc2 and waits until both stop" in body
    assert "*Plan fingerprint*\n`ab12cd34`" in body
    assert "*Asked by*\n<@U0OPERATOR>" in body
    # A time each reader sees in their own zone, and a count that stays true when read late.
    assert f"*Valid until*\n{at(NOW + 900, False)} (15 min left at {at(NOW, False)})" in body
    assert "*Request*\n`pause-1`" in body
    assert "*Change*\nhc1 (salesforce) → hc2 (salesforce2)" in body
    assert "React with :white_check_mark: to approve (not the requester; approvers only)" in body
    assert text == (
        "Approval needed: pause (plan ab12cd34, asked by <@U0OPERATOR>) — "
        "react with :white_check_mark: to approve"
    )


def test_approval_message_custom_emoji_and_untrusted_fields():
    req = request(requester="bob <!channel>", note="see <https://evil|here> & more")
    _, blocks = valid(
        B.approval_message(req, None, step_summary="x", emoji=":thumbsup:", now=NOW + 600)
    )
    body = "\n".join(texts(blocks))
    assert "React with :thumbsup: to approve" in body
    assert "*Asked by*\nbob &lt;!channel&gt;" in body
    assert "*Note:* see &lt;https://evil|here&gt; &amp; more" in body
    assert f"(5 min left at {at(NOW + 600, False)})" in body
    assert "*Change*" not in body


@pytest.mark.parametrize(
    ("changes", "header", "line"),
    [
        (
            {"status": "granted", "approver": "U0APPROVER", "granted_at": "2023-11-14T22:20:05Z"},
            "Approved: pause",
            f":white_check_mark: approved by <@U0APPROVER> at {at(NOW + 272, False)} — usable "
            f"until {at(NOW + 900, False)} (15 min left at {at(NOW, False)})",
        ),
        (
            {
                "status": "used",
                "approver": "U0APPROVER",
                "granted_at": "2023-11-14T22:20:05Z",
                "used_at": "2023-11-14T22:21:00Z",
            },
            "Approval used: pause",
            f":white_check_mark: approved by <@U0APPROVER> at {at(NOW + 272, False)}, used at "
            f"{at(NOW + 327, False)}",
        ),
        (
            {"status": "expired", "expired_at": "2023-11-14T22:31:00Z"},
            "Approval expired: pause",
            f":hourglass: expired at {at(NOW + 927, False)} without a second person's approval",
        ),
        (
            {"status": "pending", "expires_epoch": NOW - 60},
            "Approval expired: pause",
            f":hourglass: expired at {at(NOW - 60, False)} without a second person's approval",
        ),
        (
            {"status": "superseded", "superseded_by": "pause-2"},
            "Approval superseded: pause",
            ":arrows_counterclockwise: superseded by `pause-2`: react on the newer request",
        ),
    ],
)
def test_approval_decided_variants(changes, header, line):
    text, blocks = valid(
        B.approval_decided(request(**changes), a_plan(), step_summary="pauses", now=NOW)
    )
    body = texts(blocks)
    assert blocks[0]["text"]["text"] == header
    assert line in body
    assert not any("React with" in t for t in body)
    assert text == f"{header} — {line}"


def test_approval_decided_pending_keeps_the_instruction():
    _, blocks = valid(B.approval_decided(request(), None, step_summary="s", now=NOW))
    assert blocks[0]["text"]["text"] == "Approval needed: pause"
    assert "React with :white_check_mark: to approve" in "\n".join(texts(blocks))


# -- milestones ------------------------------------------------------------------------------
def event(kind: str, step: str | None = "add-columns", message: str = "", **data: Any) -> Event:
    return Event.model_validate(
        {
            "kind": kind,
            "swap_id": "acme-2026-12-01",
            "step": step,
            "actor": "U0OPERATOR",
            "message": message,
            "data": data,
            "at": "2023-11-14T22:15:33Z",
        }
    )


@pytest.mark.parametrize(
    ("ev", "line"),
    [
        (
            event("step.done", message="fields added"),
            ":white_check_mark: *add-columns* done — fields added",
        ),
        (
            event("step.failed", "pause", "hc2 did not stop"),
            ":x: *pause* failed — hc2 did not stop",
        ),
        (event("step.started", message="adds"), ":arrow_forward: *add-columns* started — adds"),
        (event("step.skipped", message="seen"), ":fast_forward: *add-columns* already done — seen"),
        (
            event("outage.started", "stop-writes", "outage started"),
            f":rotating_light: outage started at {at(NOW)}",
        ),
        (
            event("outage.ended", "restore", seconds=133.4),
            f":tada: outage ended at {at(NOW)} after 2m 13s",
        ),
        (event("outage.ended", "restore"), f":tada: outage ended at {at(NOW)}"),
        (
            event("approval.requested", "pause", "asks"),
            ":raised_hand: approval requested for *pause* by <@U0OPERATOR> — asks",
        ),
        (
            event("approval.granted", "pause"),
            ":white_check_mark: *pause* approved by <@U0OPERATOR>",
        ),
        (
            event("approval.refused", "pause", "own step"),
            ":no_entry: approval of *pause* refused (<@U0OPERATOR>) — own step",
        ),
        (
            event("approval.refused", None, "no such request", request_id="ab12"),
            ":no_entry: approval of request ab12 refused (<@U0OPERATOR>) — no such request",
        ),
        (
            event("approval.expired", "pause"),
            ":hourglass_flowing_sand: approval of *pause* expired",
        ),
        (event("rollback.started", None, "rollback started"), ":rewind: rollback started"),
        (
            event("rollback.done", None, "back on hc1"),
            ":leftwards_arrow_with_hook: rollback done — back on hc1",
        ),
        (event("swap.done", None), ":tada: swap done"),
        (
            event("step.waiting", "authorize", "open the Salesforce link"),
            ":hourglass: *authorize* waiting: open the Salesforce link",
        ),
        (event("notice", None, "alice marked k done"), ":speech_balloon: alice marked k done"),
    ],
)
def test_milestone_lines(ev, line):
    assert B.milestone(ev) == line


def test_milestone_links_only_safe_urls():
    ok = event("step.waiting", "authorize", "authorize hc2", link="https://x.test/a?b=1&c=2")
    assert B.milestone(ok).endswith("<https://x.test/a?b=1&amp;c=2|open the link>")
    local = event("step.waiting", "authorize", "go", link="http://127.0.0.1:8080/auth")
    assert B.milestone(local).endswith("<http://127.0.0.1:8080/auth|open the link>")
    for bad in (
        "http://127.0.0.1.evil.test/x",
        "http://example.test/x",
        "javascript:alert(1)",
        "https://x.test/a|<!channel>",
    ):
        line = B.milestone(event("step.waiting", "authorize", "go", link=bad))
        assert "|open the link>" not in line
        assert "<!channel>" not in line
    creds = B.milestone(event("step.waiting", "x", "go", link="https://u:pw@x.test/"))
    assert "pw" not in creds and "<https" not in creds
    long = B.milestone(
        event("step.waiting", "x" * 999, "&" * 999, link="https://x.test/" + "a" * 1900)
    )
    assert len(long) <= 2900 and long.endswith("…")
    valid(("t", [B._section(long)]))


def test_milestone_escapes_messages():
    line = B.milestone(event("step.failed", "pause", "<!channel> &\nsecond line"))
    assert line == ":x: *pause* failed — &lt;!channel&gt; &amp; second line"
    model = Event(kind="step.done", swap_id="s", step="verify", message="ok")
    assert B.milestone(model) == ":white_check_mark: *verify* done — ok"
    text, blocks = valid(B.milestone_message(model, now=NOW))
    assert text == ":white_check_mark: *verify* done — ok"


def test_is_broadcast():
    for kind in (
        "outage.started",
        "outage.ended",
        "step.failed",
        "approval.requested",
        "rollback.started",
        "rollback.done",
        "swap.done",
    ):
        assert B.is_broadcast(event(kind)), kind
    assert not B.is_broadcast(event("step.done", "add-columns"))
    assert B.is_broadcast(event("step.done", "delete-old"))
    assert B.is_broadcast(event("step.done", "other", point_of_no_return=True))
    for kind in ("step.started", "step.waiting", "load.progress", "approval.granted", "call"):
        assert not B.is_broadcast(event(kind)), kind


# -- progress --------------------------------------------------------------------------------
def test_progress_message_small():
    progress = {
        "step": "wait-sync",
        "step_since": NOW - 60,
        "loads": {
            "Account": {
                "state": "INITIAL_IMPORT",
                "db": 10,
                "sf": 100,
                "progress": 10.0,
                "rate": 55.2,
                "eta_seconds": 120.0,
            },
            "Contact": {"state": "DATA_SYNCED", "db": 90, "sf": 100, "progress": None},
        },
        "backlog": {"rows": 3, "oldest_seconds": 1.2},
        "outage_started_epoch": OUTAGE_START,
    }
    text, blocks = valid(B.progress_message("acme-1", progress, now=NOW))
    body = "\n".join(texts(blocks))
    assert body.startswith(":rotating_light: swap acme-1 · *outage*\n")
    assert f"*Step:* wait-sync — running since {at(NOW - 60)}" in body
    assert "1 of 2 loads in sync · overall ▓▓▓▓▓░░░░░ 50%" in body
    assert f":rotating_light: outage running 2m 13s (since {at(OUTAGE_START)})" in body
    assert ":inbox_tray: write backlog: 3 rows, oldest 1s" in body
    assert (
        "• Account · INITIAL_IMPORT · db 10 · sf 100 · ▓░░░░░░░░░ 10% · 55 rows/s · "
        "about 2m 00s left"
    ) in body
    assert blocks[-1]["elements"][0]["text"] == f"updated {at(NOW)}"
    assert text == (
        "swap acme-1 · outage: wait-sync running — 1 of 2 loads in sync, "
        f"outage running 2m 13s (since {at(OUTAGE_START)})"
    )


def test_progress_message_stops_the_outage_clock_when_the_outage_ends():
    """The issue: half an hour after the outage ended the message still said "outage running
    35m 00s". The clock runs only between the outage's start and its end, then shows its final
    figure and when it ended, whenever the message is drawn again."""
    ended = OUTAGE_START + 312
    progress = {
        "phase": "after the outage",
        "last_done": "restore",
        "next": "external-objects",
        "outage_started_epoch": OUTAGE_START,
        "outage_ended_epoch": ended,
    }
    for now in (ended + 1, ended + 1800):
        text, blocks = valid(B.progress_message("acme-1", progress, now=now))
        body = "\n".join(texts(blocks))
        assert f":stopwatch: outage 5m 12s, ended {at(ended)}" in body
        assert "outage running" not in body
        assert "*after the outage*" in body
        assert "*Step:* none running · last done *restore* · next *external-objects*" in body
        assert (
            text
            == f"swap acme-1 · after the outage: next external-objects, outage 5m 12s, ended {at(ended)}"
        )


@pytest.mark.parametrize(
    ("progress", "head", "step"),
    [
        ({}, ":hourglass_flowing_sand: swap acme-1 · *prep*", None),
        (
            {"step": "restore", "step_state": "waiting", "outage_started_epoch": OUTAGE_START},
            ":rotating_light: swap acme-1 · *outage*",
            "*Step:* restore — waiting",
        ),
        (
            {"phase": "outage", "last_done": "drain", "next": "pause", "next_state": "failed"},
            ":rotating_light: swap acme-1 · *outage*",
            "*Step:* none running · last done *drain* · next *pause* (failed: run it again)",
        ),
        (
            {"phase": "done", "last_done": "external-objects"},
            ":tada: swap acme-1 · *done*",
            "*Step:* every step is done",
        ),
        (
            {"phase": "rolling back", "last_done": "drain", "next": "pause"},
            ":rewind: swap acme-1 · *rolling back*",
            "*Step:* none running · last done *drain* · next *pause*",
        ),
        (
            {"phase": "rolled back", "last_done": "prepare-objects", "next": "stop-writes"},
            ":leftwards_arrow_with_hook: swap acme-1 · *rolled back*",
            "*Step:* none running · last done *prepare-objects*",
        ),
    ],
)
def test_progress_message_says_the_phase_and_the_step(progress, head, step):
    _, blocks = valid(B.progress_message("acme-1", progress, now=NOW))
    lines = texts(blocks)[0].splitlines()
    assert lines[0] == head
    if step is None:
        assert not any(line.startswith("*Step:*") for line in lines)
    else:
        assert lines[1] == step


def test_progress_message_with_hundreds_of_loads():
    loads = {m["object"]: m for m in many_mappings(400, "L")}
    _, blocks = valid(B.progress_message("acme-1", {"step": "wait-sync", "loads": loads}, now=NOW))
    body = "\n".join(texts(blocks))
    assert "380 of 400 loads in sync" in body
    assert "DATA_SYNCED 380 · INITIAL_IMPORT 17 · SYNC_ERROR 3" in body
    assert body.index("LErr2") < body.index("LLoad19 ") < body.index("LLoad3 ")
    # Slack passes no option to a slash command's answer: the hint is the terminal's command.
    assert blocks[-2]["elements"][0]["text"] == (
        "… and 380 more — full detail: `heroku run swapbot hcswap status --json`"
    )
    assert "/hcswap status --json" not in body


def test_progress_message_without_loads():
    text, blocks = valid(B.progress_message("acme-1", {"step": None, "loads": {}}, now=NOW))
    assert text == "swap acme-1 · prep"
    assert texts(blocks)[0] == ":hourglass_flowing_sand: swap acme-1 · *prep*"


# -- replies ---------------------------------------------------------------------------------
def test_reply_with_500_dry_run_calls_is_truncated():
    calls = [f"POST /api/v3/connections/c{i}/actions/pause" for i in range(500)]
    result = {
        "command": "/hcswap pause",
        "status": "dry-run",
        "message": "would pause",
        "calls": calls,
    }
    text, blocks = valid(B.reply(result))
    body = "\n".join(texts(blocks))
    assert text == "/hcswap pause dry-run: would pause"
    assert body.startswith(":mag: */hcswap pause* dry-run — would pause")
    assert "```\nPOST /api/v3/connections/c0/actions/pause\n" in body
    assert "c39/actions/pause" in body and "c40/actions/pause" not in body
    assert blocks[-1]["elements"][0]["text"] == "… 460 more"


def test_reply_splits_long_text_and_notes_the_cut():
    lines = [f"{i:05} & <b> event ```" + "x" * 80 for i in range(2000)]
    result = {
        "command": "/hcswap history",
        "status": "done",
        "message": "",
        "text": "\n".join(lines),
    }
    _, blocks = valid(B.reply(result))
    sections = [b for b in blocks if b["type"] == "section"][1:]
    assert len(sections) >= 3
    for section in sections:
        code = section["text"]["text"]
        assert code.startswith("```\n") and code.endswith("\n```")
        assert code.count("```") == 2  # the input's fences cannot close the block
    body = "\n".join(texts(blocks))
    assert "00000 &amp; &lt;b&gt; event" in body
    shown = sum(body.count(f"{i:05} &amp;") for i in range(2000))
    assert blocks[-1]["elements"][0]["text"] == (
        f"… truncated: {2000 - shown:,} more lines not shown here"
    )


def test_reply_statuses_and_plain_text():
    for status, icon in (
        ("done", ":white_check_mark:"),
        ("skipped", ":fast_forward:"),
        ("waiting", ":hourglass:"),
        ("refused", ":no_entry:"),
        ("failed", ":x:"),
    ):
        result = {"command": "/hcswap pause", "status": status, "message": "m <!here>"}
        text, blocks = valid(B.reply(result))
        assert texts(blocks)[0] == f"{icon} */hcswap pause* {status} — m &lt;!here&gt;"
        assert text == f"/hcswap pause {status}: m &lt;!here&gt;"
    _, blocks = valid(B.reply({"command": "/hcswap plan show", "status": "done", "text": "a\nb"}))
    assert texts(blocks)[1] == "```\na\nb\n```"


def test_usage_and_refusal():
    text, blocks = valid(B.usage("/hcswap status\n/hcswap <step>"))
    assert text == "/hcswap status"  # the first line: what a notification shows
    assert texts(blocks) == ["```\n/hcswap status\n/hcswap &lt;step&gt;\n```"]
    text, blocks = valid(B.refusal("U0X is not an approver <!channel>"))
    assert text == "U0X is not an approver &lt;!channel&gt;"
    assert texts(blocks) == [":no_entry: U0X is not an approver &lt;!channel&gt;"]
    valid(B.usage("h\n" * 5000))
    valid(B.refusal("r" * 10_000))


def test_block_ids_change_between_renders():
    _, first = B.status_message(status_doc(), now=NOW)
    _, second = B.status_message(status_doc(), now=NOW + 5)
    assert {b["block_id"] for b in first}.isdisjoint(b["block_id"] for b in second)


def test_a_refusal_links_the_channel_it_names_and_nothing_else():
    text, blocks = B.refusal("Run it in <#C0SWAP>, not here. <@U0ALL> <!channel> & co")
    assert "<#C0SWAP>" in text
    assert "&lt;@U0ALL&gt;" in text and "&lt;!channel&gt;" in text and "&amp; co" in text


def test_a_milestone_whose_data_is_not_as_expected_is_still_told(caplog):
    """An event's data is read through a typed payload; data a field cannot take (here a
    check's own `seconds` given as text) leaves the payload empty and is logged, and the line
    still says what happened."""
    odd = event("outage.ended", "restore", "outage ended", seconds="two minutes")
    assert odd.payload.seconds is None
    assert B.milestone(odd) == f":tada: outage ended at {at(NOW)}"
    assert "data not as expected" in caplog.text
    caplog.clear()  # the logged warning is expected here, not a renderer's fallback
    fine = event("step.waiting", "authorize", "go", person="U0ALICE", link="https://x.test/a")
    assert fine.payload.person == "U0ALICE"
    assert B.milestone(fine).startswith(":hourglass: *authorize* waiting: go (<@U0ALICE>)")


# -- people are mentions ---------------------------------------------------------------------
def test_people_a_milestone_names_are_mentions():
    """The issue: "U0APPROVER approved pause … for U0OPERATOR" in the thread, ids as text."""
    granted = event(
        "approval.granted", "pause", "U0APPROVER approved pause (pause-1) for U0OPERATOR"
    )
    granted = granted.model_copy(update={"actor": "U0APPROVER"})
    assert B.milestone(granted) == (
        ":white_check_mark: *pause* approved by <@U0APPROVER> — "
        "<@U0APPROVER> approved pause (pause-1) for <@U0OPERATOR>"
    )
    # Short ids are people when the event (its actor, its data) or the caller names them.
    short = Event(
        kind="approval.granted", swap_id="s", step="pause", actor="U2", message="U2 for U1"
    )
    assert B.milestone(short, people=["U1"]).endswith("— <@U2> for <@U1>")
    assert B.milestone(short).endswith("— <@U2> for U1")
    # A notice of the worker's, a terminal user, words that only look like ids: as they are.
    notice = Event(kind="notice", swap_id="s", actor="U0OP", message="/hcswap pause by U0OP: x")
    assert B.milestone(notice) == ":speech_balloon: /hcswap pause by <@U0OP>: x"
    plain = Event(kind="notice", swap_id="s", actor="alice", message="alice saw UPDATED UTF8 W1")
    assert B.milestone(plain) == ":speech_balloon: alice saw UPDATED UTF8 W1"
    # Nothing a person typed becomes a mention: their <@…> stays escaped text.
    typed = Event(kind="notice", swap_id="s", actor="U0OP", message="<@U0OP> `U0OP` x-U0OP")
    assert B.milestone(typed) == ":speech_balloon: &lt;@U0OP&gt; `U0OP` x-U0OP"


def test_people_a_reply_or_a_refusal_names_are_mentions():
    result = {"command": "/hcswap pause", "status": "refused", "people": ["U0OP"]}
    message = "pause-1 by U0OPERATOR is waiting for a second person; U0OP asked"
    text, blocks = valid(B.reply(result | {"message": message}))
    said_ = "<@U0OPERATOR> is waiting for a second person; <@U0OP> asked"
    assert said_ in texts(blocks)[0] and said_ in text
    [(_, pages)] = [valid(p) for p in B.reply_pages(result | {"message": message})]
    assert said_ in texts(pages)[0]
    text, blocks = valid(B.refusal("U0X asked for pause and cannot approve it", ["U0X"]))
    assert text == "<@U0X> asked for pause and cannot approve it"


def test_what_a_person_typed_in_a_command_never_becomes_a_mention():
    """The issue: a word shaped like a member id in a typed command (a note, a plan's value)
    pinged whoever has that id. The engine's message still names its people."""
    result = {
        "command": "/hcswap request-approval pause ask UABCDEFGH12",
        "status": "done",
        "message": "approval pause-1 requested by U0OPERATOR",
        "people": ["U0OPERATOR"],
    }
    for text, blocks in [valid(B.reply(result)), *map(valid, B.reply_pages(result))]:
        shown = text + json.dumps(blocks)
        assert "UABCDEFGH12" in shown and "<@UABCDEFGH12>" not in shown
        assert "requested by <@U0OPERATOR>" in shown


def test_a_reminder_mentions_whom_it_nudges_and_dates_the_expiry():
    ev = event(
        "reminder",
        "pause",
        "the approval pause-1 of pause expires soon: an approver, not U0OPERATOR, can approve it",
        people=["U0APPROVER", "U0APPROVER2", "not an id"],
        expires_epoch=NOW + 300,
    )
    assert B.milestone(ev) == (
        ":bell: the approval pause-1 of pause expires soon: an approver, not <@U0OPERATOR>, "
        f"can approve it (expires {at(NOW + 300, False)}) — <@U0APPROVER> <@U0APPROVER2> "
        "not an id"
    )


def test_times_the_engine_writes_are_date_tokens():
    """An absolute time in a message (the engine writes ISO-8601, or "01:45:06 UTC") is shown
    as a date token: each reader sees it in their own zone."""
    used = event(
        "approval.refused",
        "pause",
        "pause-1 was already approved and used at 2023-11-14T22:14:00.250Z",
    )
    token = "<!date^1700000040^{date_short_pretty} {time_secs}|2023-11-14 22:14:00 UTC>"
    assert B.milestone(used).endswith(f"used at {token}")
    # a time of day is taken on the day nearest to when it was written (here, the day before)
    late = Event(
        kind="notice",
        swap_id="s",
        message="waiting until 23:59:30 UTC",
        at=datetime.fromtimestamp(NOW + 7200, UTC),
    )
    assert B.milestone(late).endswith(f"until {at(1_700_006_370)}")  # 14 Nov, not 15 Nov
    text, _ = valid(B.refusal("pause-1 is waiting (until 22:30 UTC) `22:30 UTC`"))
    shown = r"pause-1 is waiting \(until <!date\^\d+\^\{time\}\|[-\d]{10} 22:30 UTC>\) `22:30 UTC`"
    assert re.fullmatch(shown, text), text  # the one in code stays as it is
