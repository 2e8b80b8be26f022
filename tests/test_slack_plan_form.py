"""`/hcswap plan new` with no arguments: the plan as a form.

The web process authorizes it as `plan new`, acknowledges it empty and opens a small modal with
the command's trigger_id; the worker fills it with hc1's mappings, the database's roles and the
app's process types. The field search is answered from the describes the worker cached; a
submission is checked on its own at once (errors beside the fields) and saved by the worker as
the equivalent `plan new`, with every check of the engine.

First the views and the way back from a submission (no processes), then the whole front end:
`swapbot serve` and `swapbot worker` with the sandbox and the Slack stand-in.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from slack_sdk.models.views import View
from slack_sdk.signature import SignatureVerifier

from swapbot import commands
from swapbot.sandbox.scenarios import role_names
from swapbot.slack import plan_form, work
from swapbot.slack.app import build_app
from swapbot.slack.blocks import plan_form as form
from swapbot.slack.blocks.plan_form import FormFacts
from swapbot.slack.client import views_client
from swapbot.swap.store import Store
from swapbot.testing.driver import SlackDriver
from swapbot.testing.rehearsal import LocalSlack
from swapbot.testing.services import REDIS_TEST_URL, database_url
from swapbot.testing.slack_stack import (
    APPROVER,
    CHANNEL,
    OPERATOR,
    READER,
    SECOND_APPROVER,
    running_stack,
    said,
    store,
)
from swapbot.testing.standin import SlackStandIn, validate_options, validate_view
from tests.test_slack_buttons import SECRET, web_settings


def valid(view: dict[str, Any]) -> dict[str, Any]:
    """A view as slack_sdk's models, the stand-in's checks and Block Kit's limits take it."""
    sent = {k: view[k] for k in ("type", "callback_id", "title", "blocks", "private_metadata")}
    sent |= {k: view[k] for k in ("submit", "close") if view.get(k)}
    model = View(**sent)
    model.validate_json()  # raises SlackObjectFormationError on a violation
    assert model.to_dict()
    assert validate_view(sent) == []
    assert len(view["title"]["text"]) <= 24 and len(view["blocks"]) <= 100
    assert len(view.get("private_metadata") or "") <= 3000
    for block in view["blocks"]:
        element = block.get("element") or {}
        assert len(element.get("options") or []) <= 100
    return view


def element(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b["element"] for b in view["blocks"] if b.get("block_id") == block_id)


def option_values(view: dict[str, Any], block_id: str, key: str = "options") -> list[str]:
    return [o["value"] for o in element(view, block_id).get(key) or []]


FACTS = form.FormFacts(
    app="acme-prod",
    old_addon="hc1",
    old_schema="salesforce",
    new_addon="hc2",
    swap_id="acme-prod-20261201",
    new_schema="salesforce2",
    objects=["Account", "Contact"],
    roles=["acme_app", "acme_reports"],
    default_roles=["acme_app"],
    process_types=["web", "worker"],
    default_process_types=["web", "worker"],
    bot_process_types=["swapbot"],
)


# -- the views ------------------------------------------------------------------------------------
def test_the_loading_form_and_unavailable_views_are_valid_modals():
    loading = valid(form.loading_view("C0SWAP", "acme-prod"))
    assert "Reading hc1's mappings" in json.dumps(loading) and "submit" not in loading
    shown = valid(form.form_view(FACTS, "C0SWAP"))
    assert shown["callback_id"] == form.CALLBACK_ID and shown["submit"]["text"] == "Save the plan"
    assert element(shown, form.SWAP_ID)["initial_value"] == "acme-prod-20261201"
    assert element(shown, form.NEW_SCHEMA)["initial_value"] == "salesforce2"
    assert option_values(shown, form.OBJECTS) == ["Account", "Contact"]
    assert element(shown, form.FIELDS)["type"] == "multi_external_select"
    assert option_values(shown, form.ROLES, "initial_options") == ["acme_app"]
    assert option_values(shown, form.PROCESS_TYPES, "initial_options") == ["web", "worker"]
    assert element(shown, form.AUTHORIZER)["type"] == "users_select"
    facts = form.read_metadata(shown["private_metadata"])
    assert facts == {
        "channel": "C0SWAP",
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "bot_process_types": ["swapbot"],
    }
    valid(form.unavailable_view("C0SWAP", "HerokuError: 503 " + "x" * 4000))


def test_more_than_100_objects_are_searched_not_listed():
    many = [f"Obj{i:03d}__c" for i in range(300)]
    shown = valid(form.form_view(FACTS.__class__(**{**FACTS.__dict__, "objects": many}), "C"))
    assert element(shown, form.OBJECTS) == {
        "type": "multi_external_select",
        "action_id": form.OBJECTS_ACTION,
        "placeholder": {"type": "plain_text", "text": "Type an object's name", "emoji": True},
        "min_query_length": 1,
    }
    found = form.suggestions(many, "obj2")
    assert len(found) == 100 and validate_options({"options": found}) == []
    assert found[0]["value"] == "Obj200__c"


def test_suggestions_are_fields_as_object_dot_field_best_first_at_most_100():
    fields = {"Account": ["AnnualRevenue", "Rating", "NumberOfEmployees"], "Contact": ["Phone"]}
    assert [o["value"] for o in form.suggestions(fields, "rat")] == ["Account.Rating"]
    assert [o["value"] for o in form.suggestions(fields, "num")] == ["Account.NumberOfEmployees"]
    assert [o["value"] for o in form.suggestions(fields, "e")] == [
        "Account.AnnualRevenue",  # none starts with e: those that hold it, in their order
        "Account.NumberOfEmployees",
        "Contact.Phone",
    ]
    assert [o["value"] for o in form.suggestions(fields, "a")] == [
        "Account.AnnualRevenue",  # starts with it, then holds it
        "Account.Rating",
    ]
    assert [o["value"] for o in form.suggestions(fields, "contact.")] == ["Contact.Phone"]
    assert len(form.suggestions(fields, "")) == 4
    long = {"Obj__c": [f"F{i}_{'x' * 200}" for i in range(3)] + [f"F{i}__c" for i in range(150)]}
    found = form.suggestions(long, "f")
    assert len(found) == 100 and validate_options({"options": found}) == []  # too long: left out


def state(**chosen: Any) -> dict[str, Any]:
    """`view.state.values` as Slack sends it, for the form's inputs."""
    values: dict[str, Any] = {}
    for block_id in (form.SWAP_ID, form.NEW_SCHEMA):
        values[block_id] = {block_id: {"type": "plain_text_input", "value": chosen.get(block_id)}}
    for block_id, action_id in (
        (form.OBJECTS, form.OBJECTS_ACTION),
        (form.FIELDS, form.FIELDS_ACTION),
        (form.ROLES, form.ROLES),
        (form.PROCESS_TYPES, form.PROCESS_TYPES),
    ):
        picked = [
            {"text": {"type": "plain_text", "text": v}, "value": v}
            for v in chosen.get(block_id, [])
        ]
        values[block_id] = {action_id: {"type": "multi_static_select", "selected_options": picked}}
    values[form.AUTHORIZER] = {
        form.AUTHORIZER: {"type": "users_select", "selected_user": chosen.get(form.AUTHORIZER)}
    }
    for block_id in (form.ALSO_STOP, form.READERS):
        picked = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in chosen.get(block_id, [])]  # fmt: skip
        values[block_id] = {block_id: {"type": "multi_static_select", "selected_options": picked}}
    stale = chosen.get(form.STALE_SESSIONS, "terminate")
    values[form.STALE_SESSIONS] = {
        form.STALE_SESSIONS: {"type": "radio_buttons", "selected_option": {"value": stale}}
    }
    values[form.QUIET_SECONDS] = {
        form.QUIET_SECONDS: {"type": "number_input", "value": chosen.get(form.QUIET_SECONDS)}
    }
    return values


GOOD = {
    form.SWAP_ID: "acme-20261201",
    form.NEW_SCHEMA: "salesforce2",
    form.OBJECTS: ["Account", "Contact"],
    form.FIELDS: ["Account.Rating", "Account.NumberOfEmployees"],
    form.ROLES: ["acme_app"],
    form.PROCESS_TYPES: ["web", "worker"],
    form.AUTHORIZER: "U0APPROVER2",
}
META = json.loads(form.metadata("C0SWAP", old_addon="hc1", old_schema="salesforce", new_addon="hc2", bot_process_types=["swapbot"]))  # fmt: skip


def test_a_submission_is_the_plan_new_command_it_stands_for():
    submitted = form.read_state(state(**GOOD))
    assert form.check(submitted, META, app="acme-prod", actor=OPERATOR) == {}
    text = shlex.join(form.command_words(submitted, META))
    cmd = commands.parse(text)
    plan = commands.new_plan(cmd, app="acme-prod", actor=OPERATOR)
    assert plan.mappings == {"Account": ["Rating", "NumberOfEmployees"], "Contact": []}
    assert (plan.swap_id, plan.new_schema, plan.old_addon, plan.new_addon) == (
        "acme-20261201",
        "salesforce2",
        "hc1",
        "hc2",
    )
    assert (plan.roles, plan.process_types, plan.bot_process_types) == (
        ["acme_app"],
        ["web", "worker"],
        ["swapbot"],
    )
    assert plan.authorizer == "U0APPROVER2"


def test_other_apps_stale_sessions_and_quiet_seconds_are_the_commands_options():
    chosen = GOOD | {
        form.ALSO_STOP: ["acme-admin:worker", "acme-admin:web", "acme-jobs:worker"],
        form.READERS: ["acme-bi"],
        form.STALE_SESSIONS: "refuse",
        form.QUIET_SECONDS: "2.5",
    }
    submitted = form.read_state(state(**chosen))
    assert form.check(submitted, META, app="acme-prod", actor=OPERATOR) == {}
    words = form.command_words(submitted, META)
    assert words[words.index("--also-stop") + 1] == "acme-admin:worker,web;acme-jobs:worker"
    plan = commands.new_plan(commands.parse(shlex.join(words)), app="acme-prod", actor=OPERATOR)
    assert plan.other_writers == {"acme-admin": ["worker", "web"], "acme-jobs": ["worker"]}
    assert (plan.readers, plan.stale_sessions, plan.quiet_seconds) == (["acme-bi"], "refuse", 2.5)
    defaults = form.command_words(
        form.read_state(state(**(GOOD | {form.QUIET_SECONDS: "10"}))), META
    )
    assert not {"--also-stop", "--readers", "--stale-sessions", "--quiet-seconds"} & set(defaults)


def test_the_other_apps_are_offered_as_writers_to_stop_or_readers():
    facts = FormFacts(**{**FACTS.__dict__, "other_apps": {"acme-admin": ["web", "worker"], "acme-bi": []}})  # fmt: skip
    shown = valid(form.form_view(facts, "C0SWAP"))
    assert option_values(shown, form.ALSO_STOP) == ["acme-admin:web", "acme-admin:worker"]
    assert option_values(shown, form.READERS) == ["acme-admin", "acme-bi"]
    assert option_values(shown, form.ALSO_STOP, "initial_options") == []  # a person names each
    text = json.dumps(shown["blocks"])
    assert "The database is also attached to acme-admin, acme-bi" in text
    assert "The formation of acme-bi could not be read" in text
    assert element(shown, form.STALE_SESSIONS)["initial_option"]["value"] == "terminate"
    assert element(shown, form.QUIET_SECONDS)["initial_value"] == "10"
    alone = valid(form.form_view(FACTS, "C0SWAP"))
    assert "No other app is attached to the database." in json.dumps(alone["blocks"])
    assert not any(b.get("block_id") in (form.ALSO_STOP, form.READERS) for b in alone["blocks"])


def test_a_form_drawn_again_keeps_the_choices_and_marks_the_problems():
    facts = FormFacts(**{**FACTS.__dict__, "other_apps": {"acme-admin": ["web", "worker"]}})
    chosen = form.read_state(state(**(GOOD | {form.READERS: ["acme-admin"], form.QUIET_SECONDS: "7"})))  # fmt: skip
    problems, rest = form.place(
        [
            "hc1 syncs schema sf, not salesforce",
            "schema salesforce2 already exists: choose a new one",
            "Account has no field Ratin in Salesforce",
            "acme-admin is not attached to postgresql-acme",
            "role acme_x does not exist in the database",
        ],
        chosen,
        facts,
    )
    assert set(problems) == {form.NEW_SCHEMA, form.FIELDS, form.READERS, form.ROLES}
    assert rest == ["hc1 syncs schema sf, not salesforce"]
    shown = valid(form.form_view(facts, "C0SWAP", chosen, problems, rest))
    blocks = shown["blocks"]
    for block_id, words in ((form.NEW_SCHEMA, "already exists"), (form.FIELDS, "no field Ratin"), (form.READERS, "not attached"), (form.ROLES, "acme_x")):  # fmt: skip
        at = next(i for i, b in enumerate(blocks) if b.get("block_id") == block_id)
        assert blocks[at + 1]["type"] == "context" and words in json.dumps(blocks[at + 1])
    assert "hc1 syncs schema sf" in json.dumps(blocks[1])
    assert element(shown, form.SWAP_ID)["initial_value"] == GOOD[form.SWAP_ID]
    assert option_values(shown, form.OBJECTS, "initial_options") == ["Account", "Contact"]
    assert option_values(shown, form.FIELDS, "initial_options") == GOOD[form.FIELDS]
    assert option_values(shown, form.READERS, "initial_options") == ["acme-admin"]
    assert element(shown, form.AUTHORIZER)["initial_user"] == GOOD[form.AUTHORIZER]
    assert element(shown, form.QUIET_SECONDS)["initial_value"] == "7"


def test_live_problems_go_under_a_field_the_form_shows():
    unreadable = FormFacts(**{**FACTS.__dict__, "other_apps": {"acme-admin": []}})
    unnamed = "the database is also attached to acme-admin (process types none): name each …"
    own = "cannot read acme-prod's formation (Forbidden: no access): it writes"
    placed, rest = form.place([unnamed, own], form.Submitted(), unreadable)
    assert placed == {form.READERS: unnamed, form.PROCESS_TYPES: own} and rest == []
    shown = valid(form.form_view(unreadable, "C0SWAP", form.Submitted(), placed, rest))
    at = next(i for i, b in enumerate(shown["blocks"]) if b.get("block_id") == form.READERS)
    assert "also attached to acme-admin" in json.dumps(shown["blocks"][at + 1])


@pytest.mark.parametrize(
    ("changes", "block_id", "message"),
    [
        ({form.QUIET_SECONDS: "soon"}, form.QUIET_SECONDS, "A number of seconds"),
        ({form.QUIET_SECONDS: "900"}, form.QUIET_SECONDS, "less than or equal to 600"),
        ({form.ALSO_STOP: ["acme-bi:web"], form.READERS: ["acme-bi"]}, form.READERS, "a writer or a reader, not both"),
        ({form.NEW_SCHEMA: "Bad Schema!"}, form.NEW_SCHEMA, "schema 'Bad Schema!' is not valid"),
        ({form.NEW_SCHEMA: "pg_mine"}, form.NEW_SCHEMA, "is reserved"),
        ({form.NEW_SCHEMA: "salesforce"}, form.NEW_SCHEMA, "new_schema must differ"),
        ({form.SWAP_ID: "Bad id"}, form.SWAP_ID, "swap id 'Bad id' is not valid"),
        ({form.OBJECTS: [], form.FIELDS: []}, form.OBJECTS, "Choose at least one object"),
        ({form.OBJECTS: ["Contact"]}, form.FIELDS, "Account.Rating, Account.NumberOfEmployees"),
        ({form.PROCESS_TYPES: ["swapbot"]}, form.PROCESS_TYPES, "never scale the bot's own"),
    ],
)  # fmt: skip
def test_what_is_wrong_on_its_own_is_said_beside_its_field(changes, block_id, message):
    errors = form.check(
        form.read_state(state(**(GOOD | changes))), META, app="acme-prod", actor="U"
    )
    assert list(errors) == [block_id] and message in errors[block_id], errors
    assert len(errors[block_id]) <= 300


def test_an_addon_without_mappings_is_said_not_offered_as_an_empty_select():
    """The issue: hc1 with no mappings made a multi_static_select with no options, which Slack
    refuses: the modal stayed on "Reading…"."""
    shown = valid(form.form_view(FormFacts(**{**FACTS.__dict__, "objects": []}), "C0SWAP"))
    assert "submit" not in shown
    assert "hc1 has no mappings: nothing to swap" in json.dumps(shown)


def test_a_suggested_name_never_exceeds_the_fields_max_length():
    """The issue: a 60-character old schema made a suggested new schema of 70 characters, over
    the input's max_length of 63, and Slack refused the whole view."""
    old = "s" * 60
    assert len(plan_form.suggested_schema(old, "20261201", {"salesforce2"})) <= 63
    assert plan_form.suggested_schema(old, "20261201", {"salesforce2"}).endswith("_20261201")
    assert len(plan_form.suggested_schema(old, "20261201", {"salesforce2", "s" * 54 + "_20261201"})) <= 63  # fmt: skip
    too_long = FormFacts(**{**FACTS.__dict__, "new_schema": "n" * 70, "swap_id": "i" * 64})
    shown = valid(form.form_view(too_long, "C0SWAP"))
    assert "initial_value" not in element(shown, form.NEW_SCHEMA)
    assert "initial_value" not in element(shown, form.SWAP_ID)


def mrkdwn(view: dict[str, Any]) -> list[str]:
    """The view's mrkdwn texts, where Slack reads <…> and & as markup."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(view["blocks"])
    return found


def test_names_notes_and_errors_are_escaped_in_the_forms_mrkdwn():
    odd = FormFacts(
        **{**FACTS.__dict__, "app": "a<!here>", "notes": ["Could not read <@U0ABCDEFGH1> & co"]}
    )
    said_ = json.dumps(mrkdwn(valid(form.form_view(odd, "C0SWAP"))))  # plain_text is as is
    assert "a&lt;!here&gt;" in said_ and "<!here>" not in said_
    assert "&lt;@U0ABCDEFGH1&gt; &amp; co" in said_ and "<@U0ABCDEFGH1>" not in said_
    why = json.dumps(mrkdwn(valid(form.unavailable_view("C0SWAP", "Error: <!channel> & <x|y>"))))
    assert "&lt;!channel&gt; &amp; &lt;x|y&gt;" in why and "<!channel>" not in why
    loading = json.dumps(mrkdwn(valid(form.loading_view("C0SWAP", "a<b", "h<c"))))
    assert "a&lt;b's" in loading and "h&lt;c's" in loading


# -- the worker's side, in process -----------------------------------------------------------------
class FormEngine:
    """What the worker's form jobs use of an engine (the live reads are `gather`'s, replaced)."""

    def __init__(self, store: Store):
        self.store = store
        self.emitted: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: str, swap_id: str, **kw: Any) -> None:
        self.emitted.append((kind, swap_id, kw))


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(
        channels={CHANNEL: {"name": "swaps", "members": {OPERATOR, "U0SWAPBOT"}}}
    ) as s:
        yield s


@pytest.fixture
def worker(monkeypatch, slack, redis_prefix) -> FormEngine:
    """The worker's context: the stand-in's client and an engine on this test's Redis."""
    settings = web_settings(slack, redis_prefix)
    engine = FormEngine(Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix))
    client = WebClient(token=slack.token, base_url=slack.api_url)
    monkeypatch.setattr(work, "context", lambda: (settings, client, engine))
    monkeypatch.setattr(plan_form, "SETTLE_SECONDS", 0.0)
    return engine


def opened(slack: SlackStandIn) -> dict[str, Any]:
    """A modal as the web process opens it: the loading view."""
    slack.issue_trigger("t-form", OPERATOR, CHANNEL)
    client = WebClient(token=slack.token, base_url=slack.api_url)
    return client.views_open(trigger_id="t-form", view=form.loading_view(CHANNEL, "acme-prod"))[
        "view"
    ]


def test_a_form_without_mappings_says_so_in_the_modal(monkeypatch, slack, worker):
    first = opened(slack)
    no_objects = FormFacts(**{**FACTS.__dict__, "objects": []})
    monkeypatch.setattr(plan_form, "gather", lambda *_a: no_objects)
    result = plan_form.fill_form(first["id"], first["hash"], OPERATOR, CHANNEL)
    assert result["status"] == "unavailable"
    now = slack.view(first["id"])
    assert "hc1 has no mappings: nothing to swap" in json.dumps(now["blocks"])
    assert not slack.violations


def test_a_form_slack_refuses_is_replaced_by_why_once(monkeypatch, slack, worker):
    """The issue: a views.update Slack refused left the person with "Reading…" for good."""
    first = opened(slack)
    monkeypatch.setattr(plan_form, "gather", lambda *_a: FACTS)
    broken = form.form_view(FACTS, CHANNEL) | {"title": {"type": "plain_text", "text": "x" * 40}}
    monkeypatch.setattr(plan_form.form, "form_view", lambda *_a: broken)
    result = plan_form.fill_form(first["id"], first["hash"], OPERATOR, CHANNEL)
    assert result["status"] == "failed"
    assert [c.error for c in slack.calls_to("views.update")] == ["invalid_arguments", None]
    now = json.dumps(slack.view(first["id"])["blocks"])
    assert "The form could not be filled: Slack would not show it (invalid_arguments)" in now
    slack.clear_violations()


def saving(monkeypatch, status: str, message: str, swap_id: str = "form-swap") -> None:
    def execute(_engine: Any, cmd: Any, _user: Any, **_kw: Any) -> Any:
        return commands.Reply(cmd, status, message, swap_id=swap_id)

    monkeypatch.setattr(work.commands, "execute", execute)


SAVE = "plan new --swap-id form-swap --new-schema salesforce2 --mappings Account:Rating"


def test_a_saved_form_is_answered_privately_not_in_the_channel(monkeypatch, slack, worker):
    """The issue: the form has no response_url, so every save went to the channel as well, as
    "for whoever typed `/hcswap plan new …`" (top-level: the swap had no thread yet)."""
    worker.store.redis.set(worker.store.key("swap", "current"), "form-swap")
    saving(monkeypatch, "done", "plan form-swap saved (fingerprint ab12)")
    assert plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time())["status"] == "done"
    [answer] = slack.ephemerals(OPERATOR)
    assert "plan form-swap saved" in said(answer)
    assert [m for m in slack.messages(CHANNEL) if m.ephemeral_to is None] == []
    assert worker.emitted == []


def test_a_refused_form_is_noted_only_in_a_thread_that_exists(monkeypatch, slack, worker):
    store = worker.store
    store.redis.set(store.key("swap", "current"), "old-swap")
    saving(monkeypatch, "refused", "schema taken_schema already exists", swap_id="old-swap")
    assert plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time())["status"] == "refused"
    assert "taken_schema already exists" in said(slack.ephemerals(OPERATOR)[-1])
    assert worker.emitted == []  # no thread: the refusal stays the operator's
    root = slack.post_as("U0SWAPBOT", CHANNEL, "swap old-swap: progress follows")
    store.redis.set(store.swap_key("old-swap", "slack", "thread"), root.ts)
    plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time())
    [(kind, swap_id, noted)] = worker.emitted
    assert (kind, swap_id) == ("notice", "old-swap")
    assert noted["message"].startswith("`/hcswap plan new --swap-id form-swap")
    assert slack.thread(CHANNEL, root.ts) == []  # noted by the notifier, not copied whole
    assert [m for m in slack.messages(CHANNEL) if m.ephemeral_to is None] == [root]


def checking(slack: SlackStandIn, worker: FormEngine, *, facts: bool = True) -> str:
    """A filled form, submitted: its modal says "Checking…" while the worker saves it."""
    view = opened(slack)
    if facts:
        key = plan_form.form_key(worker.store, view["id"])
        worker.store.redis.set(key, FACTS.dumps(), ex=60)
    WebClient(token=slack.token, base_url=slack.api_url).views_update(
        view_id=view["id"], view=form.checking_view(CHANNEL, {"old_addon": "hc1"})
    )
    return str(view["id"])


CHOSEN = {"swap_id": "form-swap", "new_schema": "salesforce2", "objects": ["Account"]}


def test_a_refusal_without_problems_is_said_at_the_top_of_the_form(monkeypatch, slack, worker):
    view_id = checking(slack, worker)
    saving(monkeypatch, "refused", "swap old-swap is in progress on acme-prod")
    plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time(), view_id, CHOSEN)
    shown = valid(slack.view(view_id))
    assert "swap old-swap is in progress" in json.dumps(shown["blocks"][1])
    assert shown.get("submit") and element(shown, form.SWAP_ID)["initial_value"] == "form-swap"
    assert slack.ephemerals(OPERATOR) == []
    assert not slack.violations


def test_a_failed_save_is_said_in_the_form(monkeypatch, slack, worker):
    view_id = checking(slack, worker)

    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("Heroku answered 503")

    monkeypatch.setattr(work.commands, "execute", broken)
    assert plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time(), view_id, CHOSEN)["status"] == "failed"  # fmt: skip
    assert "RuntimeError: Heroku answered 503" in json.dumps(slack.view(view_id)["blocks"])
    assert slack.ephemerals(OPERATOR) == []


def test_an_answer_the_closed_modal_cannot_show_is_said_privately(monkeypatch, slack, worker):
    """Closed meanwhile (views.update answers not_found): the person is told beside the
    channel instead, with the command the form stood for."""
    view_id = checking(slack, worker)
    slack.close_view(view_id)
    saving(monkeypatch, "refused", "the plan does not match the live system: schema x exists")
    plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time(), view_id, CHOSEN)
    [answer] = slack.ephemerals(OPERATOR)
    assert "schema x exists" in said(answer) and "plan new --swap-id form-swap" in said(answer)


@pytest.mark.parametrize("why", ["expired", "no engine"])
def test_a_form_that_cannot_be_drawn_again_says_why_and_what_to_type(
    monkeypatch, slack, worker, why
):
    """The modal never stays on "Checking…": with its names gone from Redis (after an hour),
    or the worker unable to build its engine, it says the answer and the command to type."""
    view_id = checking(slack, worker, facts=why != "expired")
    if why == "no engine":

        def broken() -> Any:
            raise RuntimeError("REDIS_URL is not reachable")

        monkeypatch.setattr(work, "context", broken)
        settings = web_settings(slack, worker.store.prefix)
        monkeypatch.setattr(work, "answerer", lambda: (settings, WebClient(token=slack.token, base_url=slack.api_url)))  # fmt: skip
        expected = "RuntimeError: REDIS_URL is not reachable"
    else:
        saving(monkeypatch, "refused", "another swap is in progress")
        expected = "another swap is in progress"
    plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time(), view_id, CHOSEN)
    shown = valid(slack.view(view_id))
    text = json.dumps(shown["blocks"])
    assert "The plan was not saved" in text and expected in text
    assert "/hcswap plan new --swap-id form-swap" in text and not shown.get("submit")
    assert slack.ephemerals(OPERATOR) == []


def test_the_answer_waits_for_slack_to_show_checking_first(monkeypatch, slack, worker):
    """Slack applies the submission's `update` as it gets the answer: the worker's answer,
    sent sooner, would be covered by "Checking…" and lost."""
    monkeypatch.setattr(plan_form, "SETTLE_SECONDS", 0.5)
    view_id = checking(slack, worker)
    saving(monkeypatch, "refused", "another swap is in progress")
    queued = time.time()
    plan_form.save_plan(SAVE, OPERATOR, CHANNEL, queued, view_id, CHOSEN)
    [update] = [c for c in slack.calls_to("views.update") if "another swap" in json.dumps(c.params)]
    assert update.at - slack.calls_to("views.update")[0].at >= 0.4


def test_the_modal_is_opened_once_with_a_short_timeout(slack, redis_prefix):
    """The issue: views.open used the app's client (10 s timeout, retries), though a
    trigger_id lives 3 seconds: a retry could not succeed and held one of the modal threads."""
    settings = web_settings(slack, redis_prefix)
    opener = views_client(settings)
    assert opener.timeout <= 2.5 and opener.retry_handlers == []
    app = build_app(settings)
    slack.outage(30, methods=["views.open"])
    body = SlackDriver("http://unused", SECRET, slack).command_form(OPERATOR, "plan new")
    stamp = str(int(time.time()))
    headers = {
        "content-type": ["application/x-www-form-urlencoded"],
        "x-slack-request-timestamp": [stamp],
        "x-slack-signature": [
            SignatureVerifier(SECRET).generate_signature(timestamp=stamp, body=body)
        ],  # fmt: skip
    }
    response = app.dispatch(BoltRequest(body=body, headers=headers))
    assert (response.status, response.body) == (200, "")
    told = slack.wait_for(lambda: slack.ephemerals(OPERATOR), timeout=10)
    assert "Slack would not open the form" in said(told[0])
    assert slack.count("views.open") == 1  # one try, no retry


# -- the whole front end --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalSlack]:
    with running_stack(tmp_path_factory.mktemp("logs")) as local:
        yield local


@pytest.fixture
def driver(stack):
    return stack.driver()


def app_role(stack: LocalSlack) -> str:
    return role_names(stack.db_name)[0]  # type: ignore[attr-defined]


@pytest.mark.slow
def test_plan_new_alone_opens_a_modal_at_once_and_the_worker_fills_it(stack, driver):
    acks = len(stack.acks(OPERATOR))
    response, first = driver.open_plan_form(OPERATOR)
    assert (response.status, response.body) == (200, "")  # the modal is the answer
    assert response.elapsed < 2.5  # well within Slack's 3 s
    assert first is not None and "Reading hc1's mappings" in json.dumps(first["blocks"])
    opened = stack.slack.calls_to("views.open")[-1]
    assert opened.ok and opened.params["trigger_id"] == response_trigger(stack, first)
    valid(first)
    assert len(stack.acks(OPERATOR)) == acks  # nothing said beside it

    shown = stack.slack.wait_for(lambda: (stack.slack.view(first["id"]) or {}).get("submit"), 60)
    shown = stack.slack.view(first["id"])
    valid(shown)
    assert shown["callback_id"] == form.CALLBACK_ID and shown["id"] == first["id"]
    assert option_values(shown, form.OBJECTS) == ["Account", "Case", "Contact", "Invoice__c", "Opportunity"]  # fmt: skip
    assert option_values(shown, form.ROLES) == [app_role(stack)]
    assert option_values(shown, form.ROLES, "initial_options") == [app_role(stack)]
    assert option_values(shown, form.PROCESS_TYPES) == ["clock", "web", "worker"]
    assert option_values(shown, form.PROCESS_TYPES, "initial_options") == ["clock", "web", "worker"]
    swap_id = element(shown, form.SWAP_ID)["initial_value"]
    assert swap_id.startswith("acme-prod-2") and len(swap_id) == len("acme-prod-20261201")
    assert element(shown, form.NEW_SCHEMA)["initial_value"] == "salesforce2"
    assert form.read_metadata(shown["private_metadata"])["channel"] == "C0SWAP"
    (update,) = [
        c for c in stack.slack.calls_to("views.update") if c.params["view_id"] == first["id"]
    ]
    assert update.ok and update.params["hash"] == first["hash"]  # guarded by the view's hash
    assert stack.slack.violations == []


def response_trigger(stack: LocalSlack, view: dict[str, Any]) -> str:
    return stack.slack.opened(view["id"]).trigger_id


@pytest.mark.slow
def test_the_field_search_offers_fields_of_the_chosen_objects(stack, driver):
    shown = stack.plan_form(driver, OPERATOR)
    answer = driver.suggest(
        OPERATOR, shown, form.FIELDS_ACTION, "rat", values={form.OBJECTS: ["Account"]}
    )
    assert answer.status == 200 and answer.elapsed < 2.5  # Slack's 3 s
    assert [o["value"] for o in answer.json()["options"]] == ["Account.Rating"]
    phone = driver.suggest(
        OPERATOR, shown, form.FIELDS_ACTION, "pho", values={form.OBJECTS: ["Account"]}
    )
    assert phone.json()["options"] == []  # Contact's, and Contact is not chosen
    contact = driver.suggest(
        OPERATOR, shown, form.FIELDS_ACTION, "p", values={form.OBJECTS: ["Contact"]}
    )
    found = [o["value"] for o in contact.json()["options"]]
    assert "Contact.Phone" in found and "Contact.Preferred_Channel__c" in found
    assert all(v.startswith("Contact.") for v in found)
    assert "Contact.Email" not in found  # mapped already: nothing to add
    anything = driver.suggest(OPERATOR, shown, form.FIELDS_ACTION, "rating")  # nothing chosen yet
    assert [o["value"] for o in anything.json()["options"]] == ["Account.Rating"]
    assert stack.slack.violations == []


@pytest.mark.slow
def test_a_bad_schema_name_is_said_on_its_field_and_nothing_is_saved(stack, driver):
    shown = stack.plan_form(driver, OPERATOR)
    before = store(stack).current_swap()
    response = driver.submit(
        OPERATOR,
        shown,
        {
            form.SWAP_ID: "form-bad-schema",
            form.NEW_SCHEMA: "Bad Schema!",
            form.OBJECTS: ["Account"],
        },
    )
    assert response.status == 200
    answer = response.json()
    assert answer["response_action"] == "errors" and list(answer["errors"]) == [form.NEW_SCHEMA]
    assert "schema 'Bad Schema!' is not valid" in answer["errors"][form.NEW_SCHEMA]
    still = stack.slack.opened(shown["id"])
    assert still.open and still.errors == answer["errors"]  # the modal stays, with the error
    s = store(stack)  # nothing was queued: a submission is marked seen only with its push
    marker = s.key("dedupe", "slack-form-submit", f"{shown['id']}:*")
    assert list(s.redis.scan_iter(match=marker)) == []
    assert s.get_plan("form-bad-schema") is None
    assert store(stack).current_swap() == before


def modal_says(stack: LocalSlack, view_id: str, words: str, timeout: float = 60) -> dict[str, Any]:
    """The modal once it shows `words` (the worker's answer in it)."""

    def shown() -> dict[str, Any] | None:
        now = stack.slack.view(view_id) or {}
        return now if words in json.dumps(now.get("blocks") or []) else None

    return stack.slack.wait_for(shown, timeout=timeout)


@pytest.mark.slow
def test_a_good_submission_saves_the_plan_and_says_so_in_the_modal(stack, driver):
    shown = stack.plan_form(driver, OPERATOR)
    n = len(stack.replies(OPERATOR))
    driver.suggest(OPERATOR, shown, form.FIELDS_ACTION, "rat", values={form.OBJECTS: ["Account"]})
    driver.suggest(OPERATOR, shown, form.FIELDS_ACTION, "pho", values={form.OBJECTS: ["Contact"]})
    response = driver.submit(
        OPERATOR,
        shown,
        {
            form.SWAP_ID: "form-swap",
            form.OBJECTS: ["Account", "Contact"],
            form.FIELDS: ["Account.Rating", "Contact.Phone"],
            form.PROCESS_TYPES: ["web", "worker"],
            form.AUTHORIZER: SECOND_APPROVER,
            form.STALE_SESSIONS: "refuse",
            form.QUIET_SECONDS: "30",
        },
    )
    answer = response.json()
    assert response.status == 200 and answer["response_action"] == "update"
    assert "Checking the plan" in json.dumps(answer["view"]["blocks"])
    valid(answer["view"])
    s = store(stack)  # queued once, marked seen with the push
    assert list(s.redis.scan_iter(match=s.key("dedupe", "slack-form-submit", f"{shown['id']}:*")))
    done = modal_says(stack, shown["id"], "plan form-swap saved")
    valid(done)
    assert stack.slack.opened(shown["id"]).open and not done.get("submit")
    assert stack.replies(OPERATOR)[n:] == []  # the answer is in the modal, not beside it
    saved = store(stack).get_plan("form-swap")
    assert store(stack).current_swap() == "form-swap"
    assert saved["mappings"] == {"Account": ["Rating"], "Contact": ["Phone"]}
    assert saved["roles"] == [app_role(stack)]
    assert saved["process_types"] == ["web", "worker"]
    assert saved["authorizer"] == SECOND_APPROVER and saved["created_by"] == OPERATOR
    assert (saved["stale_sessions"], saved["quiet_seconds"]) == ("refuse", 30.0)
    assert (saved["new_schema"], saved["old_addon"], saved["new_addon"]) == (
        "salesforce2",
        "hc1",
        "hc2",
    )
    assert stack.slack.violations == []


@pytest.mark.slow
def test_a_plan_the_live_system_refuses_comes_back_with_the_problem_beside_its_field(stack, driver):
    with psycopg.connect(database_url(stack.db_name), autocommit=True) as conn:  # type: ignore[attr-defined]
        conn.execute("CREATE SCHEMA IF NOT EXISTS taken_schema")
    shown = stack.plan_form(driver, OPERATOR)
    n = len(stack.replies(OPERATOR))
    chosen = {
        form.SWAP_ID: "form-taken",
        form.NEW_SCHEMA: "taken_schema",
        form.OBJECTS: ["Case"],
        form.QUIET_SECONDS: "20",
    }
    response = driver.submit(OPERATOR, shown, chosen)
    assert response.json()["response_action"] == "update"  # pure checks pass: the engine decides
    back = modal_says(stack, shown["id"], "schema taken_schema already exists")
    valid(back)
    blocks = back["blocks"]
    at = next(i for i, b in enumerate(blocks) if b.get("block_id") == form.NEW_SCHEMA)
    assert "schema taken_schema already exists" in json.dumps(blocks[at + 1])  # beside it
    assert "The plan was not saved" in json.dumps(blocks[:at])
    assert element(back, form.SWAP_ID)["initial_value"] == "form-taken"  # as the person left it
    assert element(back, form.NEW_SCHEMA)["initial_value"] == "taken_schema"
    assert option_values(back, form.OBJECTS, "initial_options") == ["Case"]
    assert element(back, form.QUIET_SECONDS)["initial_value"] == "20"
    assert store(stack).get_plan("form-taken") is None
    assert stack.replies(OPERATOR)[n:] == []

    again = driver.submit(OPERATOR, back, {form.NEW_SCHEMA: "free_schema"})
    assert again.json()["response_action"] == "update"
    modal_says(stack, back["id"], "plan form-taken saved")
    saved = store(stack).get_plan("form-taken")
    assert (saved["new_schema"], saved["mappings"], saved["quiet_seconds"]) == (
        "free_schema",
        {"Case": []},
        20.0,
    )
    assert stack.slack.violations == []


@pytest.mark.slow
def test_a_non_operator_is_refused_and_no_modal_opens(stack, driver):
    opened = stack.slack.count("views.open")
    for user in (READER, APPROVER):
        response, view = driver.open_plan_form(user, timeout=1.0)
        assert response.status == 200 and view is None
        assert "Only operators may run `plan`" in said(stack.acks(user)[-1])
    response, view = driver.open_plan_form(OPERATOR, channel="C0OTHER", timeout=1.0)
    assert view is None and "run only in" in said(stack.acks(OPERATOR)[-1])
    # An acknowledgement that says something is a refusal: the modal is opened only after an
    # empty one (`_open_form`), so none can open later.
    assert stack.slack.count("views.open") == opened


def test_the_objects_are_described_a_few_at_a_time_and_failures_noted(redis_prefix):
    """The issue: hc1's objects were described one after the other, so 300 mappings kept the
    modal on "Reading…" for a minute."""
    import threading

    lock, running, most = threading.Lock(), [0], [0]

    class Connect:
        def describe(self, _ref: Any, obj: str) -> dict[str, Any]:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.05)
            with lock:
                running[0] -= 1
            if obj == "Broken__c":
                raise RuntimeError("Salesforce said no")
            return {"fields": [{"name": "Id"}, {"name": f"{obj}_Field__c"}]}

    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)
    objects = [f"Object_{i}__c" for i in range(40)] + ["Broken__c"]
    started = time.monotonic()
    notes = plan_form._cache_describes(store, Connect(), None, "hc1", objects, {"Object_0__c": {"Id"}})  # fmt: skip
    assert time.monotonic() - started < 41 * 0.05 / 2  # not one after the other
    assert 1 < most[0] <= plan_form.DESCRIBES_AT_ONCE
    assert notes == ["Could not read the Salesforce fields of Broken__c: type them instead."]
    cached = json.loads(store.redis.get(plan_form.describe_key(store, "hc1", "Object_0__c")))
    assert cached == ["Object_0__c_Field__c"]  # Id is mapped already
    assert store.redis.get(plan_form.describe_key(store, "hc1", "Broken__c")) is None


def test_a_form_answer_that_breaks_is_answered_privately_instead(monkeypatch, slack, worker):
    """A bug drawing the answer in the modal must not cost the person the answer (a job never
    raises without answering)."""
    view_id = checking(slack, worker)
    saving(monkeypatch, "done", "plan form-swap saved (fingerprint ab12)")

    def broken(*_a: Any, **_kw: Any) -> Any:
        raise RuntimeError("a bug in the saved view")

    monkeypatch.setattr(plan_form.form, "saved_view", broken)
    result = plan_form.save_plan(SAVE, OPERATOR, CHANNEL, time.time(), view_id, CHOSEN)
    assert result["status"] == "done"
    assert "plan form-swap saved" in said(slack.ephemerals(OPERATOR)[-1])
