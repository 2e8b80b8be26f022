"""The swap's live card and its buttons: Run next, Request approval, Refresh.

The card (the notifier's progress message) is posted as soon as the notifier follows a swap,
edited in place, and carries the buttons that fit where the swap stands. A click takes the
approve button's path: authorized as the command it stands for, acknowledged at once, queued
once per trigger id (a step's click on the steps queue), run by the worker, which refuses a
Run next clicked on a card gone stale.

First the card alone (rendering, the notifier), then the acknowledgement in process, then the
whole front end with the Slack stand-in.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from slack_sdk import WebClient

from swapbot import commands, jobs
from swapbot.slack import blocks as B
from swapbot.slack import clicks, work
from swapbot.slack.app import build_app
from swapbot.slack.blocks.card import (
    NEXT_ACTION,
    PLAN_ACTION,
    REFRESH_ACTION,
    REQUEST_ACTION,
    request_action,
)
from swapbot.swap import steps as runbook
from swapbot.swap.approvals import Approvals
from swapbot.swap.plan import Plan
from swapbot.swap.store import Store
from swapbot.testing.driver import FORM
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import REDIS_TEST_URL
from swapbot.testing.slack_stack import (
    CHANNEL,
    OPERATOR,
    READER,
    plan_new,
    running_stack,
    said,
    store,
)
from swapbot.testing.standin import Message, SlackStandIn
from tests.test_slack_buttons import buttons_of, dispatch_click, valid, web_settings
from tests.test_slack_card import card
from tests.test_slack_notifier import SWAP, Clock, publish, setup

NOW = 1_700_000_000.0
FP = "fp0123456789"


# -- the card, rendered ------------------------------------------------------------------------
def view(**changes: Any) -> dict[str, Any]:
    base = {
        "swap_id": "acme-1",
        "phase": "prep",
        "step": None,
        "last_done": "preflight",
        "next": "create-addon",
        "fingerprint": FP,
        "buttons": True,
        "loads": {},
        "backlog": None,
    }
    return base | changes


def shown(v: dict[str, Any]) -> dict[str, dict[str, Any]]:
    _, blocks = B.progress_message(v["swap_id"], v, now=NOW)
    return buttons_of(valid(blocks))


def pending(step: str = "pause", **changes: Any) -> dict[str, Any]:
    return {
        "id": f"{step}-1",
        "swap_id": "acme-1",
        "step": step,
        "requester": OPERATOR,
        "fingerprint": "ab12",
        "live_digest": "d1",
        "requested_at": "2023-11-14T22:13:20Z",
        "requested_epoch": NOW,
        "expires_at": "2023-11-14T22:28:20Z",
        "expires_epoch": NOW + 900,
    } | changes


def test_a_prep_step_has_run_next_with_a_plain_confirmation_and_refresh():
    found = shown(view())
    assert list(found) == [NEXT_ACTION, REFRESH_ACTION]
    run = found[NEXT_ACTION]
    assert run["text"]["text"] == "Run next: create-addon" and run["style"] == "primary"
    assert run["value"] == f"create-addon {FP}"
    dialog = run["confirm"]
    assert "style" not in dialog  # plain: prep changes nothing the app feels
    assert dialog["title"]["text"] == "Run create-addon?"
    assert runbook.BY_NAME["create-addon"].summary in dialog["text"]["text"]
    assert "style" not in found[REFRESH_ACTION] and "confirm" not in found[REFRESH_ACTION]


@pytest.mark.parametrize(
    ("step", "says"),
    [
        ("stop-writes", "This starts the outage"),
        ("drain", "The outage is running"),
        ("pause", "The outage is running"),
        ("delete-old", "point of no return"),
        ("restore", "The outage is running"),
    ],
)
def test_inside_the_outage_run_next_is_danger_and_its_dialog_says_what_it_does(step, says):
    approved = "granted" if runbook.BY_NAME[step].approval else None
    phase = "prep" if step == "stop-writes" else "outage"
    run = shown(view(phase=phase, next=step, next_approval=approved))[NEXT_ACTION]
    assert run["text"]["text"] == f"Run next: {step}"
    assert run["style"] == run["confirm"]["style"] == "danger"
    text = run["confirm"]["text"]["text"]
    assert runbook.BY_NAME[step].summary in text and says in text and len(text) <= 300
    assert run["confirm"]["confirm"]["text"] == f"Run {step}"


def test_a_step_that_needs_an_approval_not_yet_asked_for_offers_to_request_it():
    found = shown(view(phase="outage", next="pause", next_approval="none"))
    assert list(found) == [REQUEST_ACTION, REFRESH_ACTION]
    ask = found[REQUEST_ACTION]
    assert ask["text"]["text"] == "Request approval for pause"
    assert ask["value"] == f"pause {FP}"  # a stale card's click asks for nothing


def test_once_prep_is_done_later_approvals_can_be_asked_for_ahead_of_the_outage():
    ahead = {"pause": "none", "delete-old": "none"}
    found = shown(view(phase="prep", next="stop-writes", ahead=ahead))
    pause, delete_old = request_action("pause"), request_action("delete-old")
    assert list(found) == [NEXT_ACTION, pause, delete_old, REFRESH_ACTION]
    assert found[pause]["value"] == f"pause {FP}" and "style" not in found[pause]
    assert found[delete_old]["text"]["text"] == "Request approval for delete-old"
    asked = shown(view(phase="prep", next="stop-writes", ahead=ahead | {"pause": "pending"}))
    assert list(asked) == [NEXT_ACTION, delete_old, REFRESH_ACTION]
    running = view(phase="outage", step="drain", next="drain", ahead=ahead)
    assert list(shown(running)) == [REFRESH_ACTION]  # nothing while a step runs


def test_the_card_offers_ahead_only_the_cutovers_later_approvals():
    from swapbot.slack.notifier import _later_approvals

    assert _later_approvals("create-addon") == []  # prep: asked hours early, it would expire
    assert _later_approvals("stop-writes") == ["pause", "delete-old"]
    assert _later_approvals("pause") == ["delete-old"]  # pause itself is the next step's
    assert _later_approvals("resume-old") == []


def test_a_pending_approval_is_listed_with_its_expiry_and_no_step_button_is_shown():
    v = view(phase="outage", next="pause", next_approval="pending", approvals=[pending()])
    _, blocks = B.progress_message("acme-1", v, now=NOW)
    assert list(buttons_of(valid(blocks))) == [REFRESH_ACTION]
    text = json.dumps(blocks)
    assert "*Approvals pending*" in text and "`pause-1` *pause*" in text
    assert f"asked by <@{OPERATOR}>" in text and f"expires <!date^{int(NOW + 900)}^" in text


def test_a_waiting_step_names_who_it_waits_on_and_no_step_can_be_run_meanwhile():
    v = view(step="authorize", step_state="waiting", waiting_on="U0AUTHORIZER")
    _, blocks = B.progress_message("acme-1", v, now=NOW)
    assert ":bust_in_silhouette: waiting on <@U0AUTHORIZER>" in blocks[0]["text"]["text"]
    assert list(buttons_of(valid(blocks))) == [REFRESH_ACTION]
    running = view(phase="outage", step="drain", step_state="running", next="drain")
    assert list(shown(running)) == [REFRESH_ACTION]


@pytest.mark.parametrize("phase", ["done", "rolled back"])
def test_a_swap_that_is_over_offers_only_to_plan_the_next(phase):
    assert list(shown(view(phase=phase, next="restore"))) == [PLAN_ACTION]


def test_a_rollback_running_has_no_buttons():
    assert shown(view(phase="rolling back", next="restore")) == {}


def test_status_with_no_plan_offers_to_plan_a_swap():
    from swapbot.swap.views import Status

    _, blocks = B.status_message(Status(app="acme-prod", message="no plan yet"), now=NOW)
    assert list(buttons_of(valid(blocks))) == [PLAN_ACTION]


def test_the_card_at_its_biggest_keeps_its_buttons():
    loads = {f"Object_{i}__c" * 3: {"state": "SYNC_ERROR", "db": i, "sf": 1000} for i in range(300)}
    approvals = [pending(id=f"pause-{i}", note="n" * 200) for i in range(30)]
    v = view(phase="outage", next="drain", loads=loads, approvals=approvals)
    _, blocks = B.progress_message("s" * 300, v, now=NOW)
    valid(blocks)
    assert NEXT_ACTION in buttons_of(blocks) and len(blocks) <= B.MAX_BLOCKS
    assert sum(len(t) for t in B._texts(blocks)) <= B.MAX_TOTAL_TEXT


# -- the card, from the notifier -------------------------------------------------------------
def check(s: Store, *done: str, **others: str) -> None:
    lease = s.acquire(SWAP, "test", 10_000)
    assert lease is not None
    for name in done:
        s.checkpoint(lease, name, status="done")
    for name, status in others.items():
        s.checkpoint(lease, name.replace("_", "-"), status=status)
    s.release(lease)


def test_the_card_is_posted_once_the_plan_is_saved_and_follows_the_swap(redis_prefix):
    clock = Clock()
    clock.now = time.time()
    with SlackStandIn() as slack:
        s, notifier = setup(redis_prefix, slack, clock, min_edit_interval=0.0)
        notifier.pump()  # no event yet: the saved plan is enough
        msg = card(slack, s)
        assert msg.thread_ts is None  # in the channel: the first message of the swap's thread
        assert "acme-prod: hc1/salesforce → hc2/salesforce2, 1 mapping" in said(msg)
        assert "milestones in this message's thread" in said(msg)
        assert s.redis.get(s.swap_key(SWAP, "slack", "thread")).decode() == msg.ts
        fingerprint = Plan.model_validate(s.get_plan(SWAP)).fingerprint()
        assert slack.buttons("C0SWAP", msg.ts)[0]["value"] == f"preflight {fingerprint}"

        prep = [st.name for st in runbook.PREP]
        check(s, *prep, stop_writes="done", drain="done")
        notifier._dirty.add(SWAP)
        notifier.pump()
        ahead = request_action("delete-old")  # asked for before the outage, if one likes
        assert list(buttons_of(card(slack, s).blocks)) == [REQUEST_ACTION, ahead, REFRESH_ACTION]

        # The approval's own events redraw the card (nothing else happens before stop-writes)
        req = Approvals(s).request(SWAP, "pause", OPERATOR, "fp", "live")
        data = {"request_id": req.id, "fingerprint": "fp", "expires_at": req.expires_at}
        publish(s, "approval.requested", step="pause", actor=OPERATOR, data=data)
        notifier.pump()
        now = card(slack, s)
        assert list(buttons_of(now.blocks)) == [ahead, REFRESH_ACTION]  # pause's is asked
        assert f"`{req.id}` *pause*" in said(now)

        Approvals(s).grant(
            SWAP, req.id, "U0APPROVER", {"U0APPROVER"}, fingerprint="fp", live_digest="live"
        )
        publish(
            s, "approval.granted", step="pause", actor="U0APPROVER", data={"request_id": req.id}
        )
        notifier.pump()
        run = buttons_of(card(slack, s).blocks)[NEXT_ACTION]
        assert run["text"]["text"] == "Run next: pause" and run["style"] == "danger"

        check(s, pause="running")
        notifier._dirty.add(SWAP)
        notifier.pump()
        assert list(buttons_of(card(slack, s).blocks)) == [REFRESH_ACTION]

        rest = [st.name for st in runbook.CUTOVER]
        check(s, *rest)
        publish(s, "swap.done", message="every step is done")
        notifier.pump()
        # every step done: nothing of the swap to click, the next one to plan
        assert list(buttons_of(card(slack, s).blocks)) == [PLAN_ACTION]
        assert not slack.violations


# -- the acknowledgement, in process ------------------------------------------------------------
def dispatch(app, slack: SlackStandIn, user: str, msg: Message, action_id: str, trigger_id: str):
    return dispatch_click(app, slack, user, msg, trigger_id, action_id)


def posted_card(slack: SlackStandIn, v: dict[str, Any]) -> Message:
    from slack_sdk import WebClient

    text, blocks = B.progress_message("acme-1", v, now=time.time())
    client = WebClient(token=slack.token, base_url=slack.api_url)
    ts = client.chat_postMessage(channel=CHANNEL, text=text, blocks=blocks)["ts"]
    found = slack.message(CHANNEL, ts)
    assert found is not None
    return found


def queued(prefix: str) -> list[dict[str, Any]]:
    raw = redis.Redis.from_url(REDIS_TEST_URL).lrange(prefix + "intake", 0, -1)
    return [json.loads(r) for r in raw]


def test_clicks_are_authorized_as_their_commands_and_queued_once(redis_prefix):
    members = {OPERATOR, READER, "U0SWAPBOT"}
    with SlackStandIn(channels={CHANNEL: {"name": "swaps", "members": members}}) as slack:
        settings = web_settings(slack, redis_prefix)
        app = build_app(settings)
        msg = posted_card(slack, view(phase="outage", next="drain"))

        # a reader may not run a step: refused privately, nothing queued
        response = dispatch(app, slack, READER, msg, NEXT_ACTION, "t-reader")
        assert (response.status, response.body) == (200, "")
        told = slack.wait_for(lambda: slack.ephemerals(READER))
        assert "Only operators may run `drain`" in said(told[0])
        answer = slack.calls_to("response_url")[-1].params
        assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
        assert queued(redis_prefix) == []

        # a reader may refresh (a read); it is interactive work
        assert dispatch(app, slack, READER, msg, REFRESH_ACTION, "t-refresh").status == 200
        # the operator's Run next, sent twice: one job, on the steps queue
        for _ in range(2):
            response = dispatch(app, slack, OPERATOR, msg, NEXT_ACTION, "t-next")
            assert (response.status, response.body) == (200, "")
        jobs_ = {j["key"]: j for j in queued(redis_prefix)}
        assert set(jobs_) == {"t-refresh", "t-next"}
        (refresh,) = jobs_["t-refresh"]["args"]
        assert jobs_["t-refresh"]["kind"] == jobs.INTERACTIVE
        assert (refresh["text"], refresh["card"]) == ("status", {"action": "refresh"})
        (run,) = jobs_["t-next"]["args"]
        assert jobs_["t-next"]["kind"] == jobs.STEPS
        assert (run["text"], run["user"], run["ts"]) == ("drain", OPERATOR, msg.ts)
        assert run["card"] == {"action": "next", "step": "drain", "fingerprint": FP}

        # Request approval carries the card's fingerprint too, for the worker's check
        asking = posted_card(slack, view(phase="outage", next="pause", next_approval="none"))
        assert dispatch(app, slack, OPERATOR, asking, REQUEST_ACTION, "t-ask").status == 200
        (ask,) = {j["key"]: j for j in queued(redis_prefix)}["t-ask"]["args"]
        assert ask["text"] == "request-approval pause"
        assert ask["card"] == {"action": "request-approval", "step": "pause", "fingerprint": FP}

        # asked ahead, from its own button (a block's action_ids differ)
        ahead = {"pause": "none", "delete-old": "none"}
        early = posted_card(slack, view(phase="prep", next="stop-writes", ahead=ahead))
        later = request_action("delete-old")
        assert dispatch(app, slack, OPERATOR, early, later, "t-ahead").status == 200
        assert dispatch(app, slack, READER, early, later, "t-ahead-reader").status == 200
        (asked,) = {j["key"]: j for j in queued(redis_prefix)}["t-ahead"]["args"]
        assert asked["text"] == "request-approval delete-old"
        assert asked["card"]["step"] == "delete-old"
        assert "t-ahead-reader" not in {j["key"] for j in queued(redis_prefix)}
        assert not slack.violations


def test_plan_a_swap_opens_the_form_for_an_operator_with_the_clicks_trigger(redis_prefix):
    members = {OPERATOR, READER, "U0SWAPBOT"}
    with SlackStandIn(channels={CHANNEL: {"name": "swaps", "members": members}}) as slack:
        app = build_app(web_settings(slack, redis_prefix))
        msg = posted_card(slack, view(phase="done", next=None))

        slack.issue_trigger("t-plan-reader", READER, CHANNEL)
        response = dispatch(app, slack, READER, msg, PLAN_ACTION, "t-plan-reader")
        assert (response.status, response.body) == (200, "")
        told = slack.wait_for(lambda: slack.ephemerals(READER))
        assert "Only operators may run `plan`" in said(told[0])
        assert slack.views(READER) == [] and queued(redis_prefix) == []

        slack.issue_trigger("t-plan", OPERATOR, CHANNEL)
        response = dispatch(app, slack, OPERATOR, msg, PLAN_ACTION, "t-plan")
        assert (response.status, response.body) == (200, "")
        [opened] = slack.wait_for(lambda: slack.views(OPERATOR, trigger_id="t-plan"))
        assert "Reading hc1's mappings" in json.dumps(opened.view["blocks"])
        [fill] = slack.wait_for(lambda: queued(redis_prefix))
        assert fill["func"] == "swapbot.slack.plan_form.fill_form" and fill["key"] == "t-plan"
        assert fill["args"][0] == opened.view["id"]
        assert not slack.violations


# -- the worker's side of a card's click, in process ---------------------------------------------
class CardEngine:
    """What `clicks` uses of an engine: the store, the approvals and a plan of fingerprint FP."""

    def __init__(self, store: Store):
        self.store, self.approvals = store, Approvals(store)
        self.emitted: list[tuple[str, str, dict[str, Any]]] = []

    def current_plan(self) -> Any:
        return types.SimpleNamespace(swap_id=SWAP, app="acme-prod", fingerprint=lambda: FP)

    def emit(self, kind: str, swap_id: str, **kw: Any) -> None:
        self.emitted.append((kind, swap_id, kw))


def clicking(monkeypatch, slack: SlackStandIn, prefix: str) -> tuple[CardEngine, list[str]]:
    """The worker's context on this test's Redis, with the commands it runs recorded (and
    answered with `CardEngine.reply`) instead of run."""
    settings = web_settings(slack, prefix)
    engine = CardEngine(Store(redis.Redis.from_url(REDIS_TEST_URL), prefix))
    engine.store.redis.set(engine.store.key("swap", "current"), SWAP)
    client = WebClient(token=slack.token, base_url=slack.api_url)
    monkeypatch.setattr(work, "context", lambda: (settings, client, engine))
    ran: list[str] = []

    def execute(_engine: Any, cmd: Any, _user: Any, **_kw: Any) -> Any:
        ran.append(cmd.name)
        return getattr(engine, "reply", None) or commands.Reply(cmd, "done", "ok", swap_id=SWAP)

    monkeypatch.setattr(clicks.commands, "execute", execute)
    return engine, ran


def card_click(slack: SlackStandIn, text: str, **on_card: str) -> dict[str, Any]:
    return {
        "text": text,
        "user": OPERATOR,
        "channel": CHANNEL,
        "ts": None,
        "response_url": slack.response_url(OPERATOR, CHANNEL),
        "action_ts": time.time(),
        "card": on_card,
    }


def test_request_approval_on_a_stale_card_asks_for_nothing(monkeypatch, redis_prefix):
    """The issue: only Run next was checked against the card; a Request approval clicked on a
    stale card superseded a pending request and pinged the approvers twice."""
    members = {OPERATOR, "U0SWAPBOT"}
    with SlackStandIn(channels={CHANNEL: {"name": "swaps", "members": members}}) as slack:
        engine, ran = clicking(monkeypatch, slack, redis_prefix)
        check(engine.store, *[st.name for st in runbook.PREP], stop_writes="done", drain="done")
        ask = {"action": "request-approval", "step": "pause"}

        def refused(on_card: dict[str, str], why: str) -> None:
            result = clicks.handle_click(card_click(slack, "request-approval pause", **on_card))
            assert result["status"] == "refused" and why in result["message"], result
            assert why in said(slack.ephemerals(OPERATOR)[-1])

        refused(ask | {"fingerprint": "other"}, "That card was drawn for another plan")
        assert ran == []
        # asked ahead: delete-old comes after pause, the next step
        later = card_click(slack, "request-approval delete-old", **ask, fingerprint=FP)
        assert clicks.handle_click(later | {"card": ask | {"fingerprint": FP, "step": "delete-old"}})["status"] == "done"  # fmt: skip
        assert ran == ["request-approval"]
        ran.clear()
        req = Approvals(engine.store).request(SWAP, "pause", OPERATOR, "fp", "live")
        refused(ask | {"fingerprint": FP}, f"the approval {req.id} of pause is pending already")
        Approvals(engine.store).grant(
            SWAP, req.id, "U0APPROVER", {"U0APPROVER"}, fingerprint="fp", live_digest="live"
        )
        refused(ask | {"fingerprint": FP}, f"the approval {req.id} of pause is granted already")
        assert ran == []  # nothing was asked for: no request superseded, no approver pinged
        assert [k for k, _, _ in engine.emitted] == ["notice"] * 3  # the thread hears of each

        engine.store.redis.hset(
            engine.store.swap_key(SWAP, "approval", req.id), "expires_epoch", "1000.0"
        )
        result = clicks.handle_click(card_click(slack, "request-approval pause", **ask, fingerprint=FP))  # fmt: skip
        assert result["status"] == "done" and ran == ["request-approval"]
        check(engine.store, "pause")  # it has run: a card still offering it is stale
        refused(ask | {"fingerprint": FP}, "pause is no longer the next step")
        assert ran == ["request-approval"]


def test_a_run_next_answered_after_30_minutes_also_lands_in_the_thread(monkeypatch, redis_prefix):
    """The issue: a click's answer went in one cut message, privately only: a long step's,
    answered after the click's response_url had expired (30 minutes), could be lost."""
    members = {OPERATOR, "U0SWAPBOT"}
    with SlackStandIn(channels={CHANNEL: {"name": "swaps", "members": members}}) as slack:
        engine, ran = clicking(monkeypatch, slack, redis_prefix)
        root = slack.post_as("U0SWAPBOT", CHANNEL, "swap: progress follows")
        engine.store.redis.set(engine.store.swap_key(SWAP, "slack", "thread"), root.ts)
        calls = [f"PATCH /apps/acme-prod/formation web={i}" for i in range(600)]
        cmd = commands.parse("preflight")
        engine.reply = commands.Reply(cmd, "done", "preflight done", calls=calls, swap_id=SWAP)  # type: ignore[attr-defined]
        click = card_click(slack, "preflight", action="next", step="preflight", fingerprint=FP)
        click["action_ts"] = time.time() - 31 * 60
        assert clicks.handle_click(click)["status"] == "done" and ran == ["preflight"]
        answers = slack.ephemerals(OPERATOR)
        posted = slack.thread(CHANNEL, root.ts)
        assert len(posted) == len(answers) > 1  # the whole answer, every part, in both
        assert f"For <@{OPERATOR}>, who clicked *Preflight*" in said(posted[0])
        shown = "\n".join(t for m in posted for t in B._texts(m.blocks))
        assert all(f"formation web={i}\n" in shown for i in range(600))
        assert not slack.violations


# -- the whole front end ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        plan_new(
            local, local.driver(), "card-swap", "--mappings Account:Rating --process-types web"
        )
        yield local


def live_card(stack: LocalSlack, showing: str | None = None) -> Message:
    """The swap's card, once it shows the button `showing` names (a step's Run next)."""
    s = store(stack)

    def found() -> Message | None:
        ts = s.redis.get(s.swap_key("card-swap", "slack", "progress"))
        msg = stack.slack.message(CHANNEL, ts.decode()) if ts else None
        if msg is None:
            return None
        run = stack.buttons(msg).get(NEXT_ACTION)
        if showing is not None and (run is None or run["text"]["text"] != showing):
            return None
        return msg

    return stack.slack.wait_for(found, timeout=30)


@pytest.mark.slow
def test_run_next_runs_the_step_and_a_stale_card_is_refused(stack):
    driver = stack.driver()
    msg = live_card(stack, "Run next: preflight")
    valid(msg.blocks)
    # the same card, clicked again later (a second person, a second tab): built now, sent later
    stale = stack.slack.block_actions(
        OPERATOR, CHANNEL, msg.ts, NEXT_ACTION, trigger_id="stale-1", api_app_id="A0", token="t"
    )
    response, reply = stack.click(driver, OPERATOR, msg, NEXT_ACTION, timeout=120)
    assert (response.status, response.body) == (200, "")
    assert "preflight" in said(reply) and "done" in said(reply), said(reply)
    assert store(stack).checkpoints("card-swap")["preflight"].status == "done"
    n = len(stack.replies(OPERATOR))
    again = driver.click_again(response.envelope["trigger_id"])  # one click, sent twice
    assert again.status == 200
    live_card(stack, "Run next: create-addon")  # the card moved on

    body = urlencode({"payload": json.dumps(stale)})
    stack.slack.issue_trigger("stale-1", OPERATOR, CHANNEL)
    assert driver._post(body, FORM).status == 200
    stack.slack.wait_for(lambda: stack.slack.uses(stale["response_url"]) == 1, timeout=30)
    # The retried click went before the stale one, to the same (steps) queue, which runs one
    # job at a time: a job of it would have answered, through the first click's URL, by now.
    assert stack.slack.uses(response.envelope["response_url"]) == 1
    told = stack.replies(OPERATOR)[n:]
    assert len(told) == 1, [said(m) for m in told]  # the retried click ran nothing more
    assert "That card is stale: preflight is no longer the next step" in said(told[0])
    assert "next step is create-addon" in said(told[0])
    nothing = store(stack).checkpoints("card-swap").get("create-addon")
    assert nothing is None or nothing.status == "pending"
    assert not stack.slack.violations, stack.slack.violations


@pytest.mark.slow
def test_a_reader_may_refresh_the_card_but_not_run_a_step(stack):
    driver = stack.driver()
    msg = live_card(stack)
    n = len(stack.replies(READER))
    response, reply = stack.click(driver, READER, msg, NEXT_ACTION)
    assert "Only operators may run" in said(reply) and reply.ephemeral_to == READER
    edits = len(stack.slack.message(CHANNEL, msg.ts).edits)
    time.sleep(1.0)
    assert driver.click(READER, msg, REFRESH_ACTION).status == 200
    stack.slack.wait_for(lambda: len(stack.slack.message(CHANNEL, msg.ts).edits) > edits, 20)
    valid(stack.slack.message(CHANNEL, msg.ts).blocks)
    assert len(stack.replies(READER)) == n + 1  # the refusal; a refresh answers with the card
    assert not stack.slack.violations
