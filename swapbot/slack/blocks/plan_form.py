"""The plan as a form: the modal `/hcswap plan new` opens when typed without arguments.

Pure functions: the views (`loading_view`, `form_view`, `unavailable_view`), the options of the
field search (`suggestions`), and the way back, from a submitted view's state to the words of
the equivalent `plan new` command (`read_state`, `command_words`) with the errors Slack shows
beside each field (`field_errors`).

Slack's limits hold by construction (https://docs.slack.dev/reference/views/modal-views,
https://docs.slack.dev/reference/block-kit/block-elements/multi-select-menu-element): a title of
at most 24 characters, at most 100 blocks, at most 100 options in a static select (more objects
than that are searched, like the fields, through an external select), option texts of at most 75
characters and values of at most 150.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from swapbot.slack.blocks.text import escape
from swapbot.swap.plan import Plan, format_mappings

CALLBACK_ID = "hcswap_plan_new"
TITLE = "Plan a swap"  # a modal's title: at most 24 characters
MAX_TITLE = 24
MAX_VIEW_BLOCKS = 100
MAX_OPTIONS = 100
MAX_OPTION_TEXT = 75
MAX_OPTION_VALUE = 150
MAX_METADATA = 3000
MAX_ERROR = 300  # ours: an error beside a field stays short
MAX_NAME = 63  # a swap id's or a schema's name (PostgreSQL's identifiers): the inputs' max_length

# Block ids (the keys of `state.values` and of `errors`) and the elements' action ids.
SWAP_ID = "swap_id"
NEW_SCHEMA = "new_schema"
OBJECTS = "objects"
FIELDS = "fields"
ROLES = "roles"
PROCESS_TYPES = "process_types"
AUTHORIZER = "authorizer"
OBJECTS_ACTION = "plan_objects"  # an external select when hc1 has more than 100 mappings
FIELDS_ACTION = "plan_fields"  # always an external select: searched in HC's describe
SEARCHED = (OBJECTS_ACTION, FIELDS_ACTION)

Block = dict[str, Any]
View = dict[str, Any]


@dataclass(frozen=True)
class FormFacts:
    """What the worker read for the form: the live system's names and the defaults."""

    app: str
    old_addon: str
    old_schema: str
    new_addon: str
    swap_id: str
    new_schema: str
    objects: list[str]
    roles: list[str] = field(default_factory=list)
    default_roles: list[str] = field(default_factory=list)
    process_types: list[str] = field(default_factory=list)
    default_process_types: list[str] = field(default_factory=list)
    bot_process_types: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str) -> Block:
    """A section of mrkdwn: whatever a name or an error puts in it is escaped by the caller."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(text, 2000)}]}


def option(value: str, text: str | None = None) -> dict[str, Any]:
    """One option; its value is kept whole (the caller leaves out what would not fit)."""
    return {"text": _plain(text or value, MAX_OPTION_TEXT), "value": value}


def options(values: Iterable[str]) -> list[dict[str, Any]]:
    """At most 100 options, leaving out values longer than Slack takes."""
    return [option(v) for v in values if 0 < len(v) <= MAX_OPTION_VALUE][:MAX_OPTIONS]


def metadata(channel: str, **facts: Any) -> str:
    """The view's private_metadata: the channel the command came from, and the names the
    submission needs (the add-ons, the old schema, the bot's own process types)."""
    text = json.dumps({"channel": channel, **facts}, separators=(",", ":"))
    if len(text) > MAX_METADATA:  # never with names that fit the plan's patterns
        text = json.dumps({"channel": channel}, separators=(",", ":"))
    return text


def read_metadata(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _modal(channel: str, blocks: list[Block], *, submit: bool, **facts: Any) -> View:
    view: View = {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "title": _plain(TITLE, MAX_TITLE),
        "close": _plain("Cancel", MAX_TITLE),
        "private_metadata": metadata(channel, **facts),
        "blocks": blocks[:MAX_VIEW_BLOCKS],
    }
    if submit:
        view["submit"] = _plain("Save the plan", MAX_TITLE)
    return view


def loading_view(channel: str, app: str | None, addon: str = "hc1") -> View:
    """What opens at once, while the worker reads the live system."""
    where = f"{escape(app)}'s" if app else "the app's"
    text = (
        f":hourglass_flowing_sand: Reading {escape(addon)}'s mappings, the database's roles and "
        f"{where} process types…"
    )
    return _modal(channel, [_mrkdwn(text)], submit=False)


def unavailable_view(channel: str, why: str) -> View:
    """The form could not be filled: why, and the command to type instead."""
    text = (
        f":warning: The form could not be filled: {escape(_cut(why, 1000))}\nNothing was saved. Type the plan "
        "instead: `/hcswap plan new --swap-id ID --new-schema S --mappings "
        "'Account:Rating;Contact:Phone' [--roles r1,r2] [--process-types web,worker]`"
    )
    return _modal(channel, [_mrkdwn(text)], submit=False)


def _input(
    block_id: str, label: str, element: Block, *, hint: str | None = None, optional: bool = False
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint, 2000)
    return block


def _text_input(action_id: str, value: str, placeholder: str) -> Block:
    element: Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "placeholder": _plain(placeholder, 150),
        "max_length": MAX_NAME,
    }
    if value and len(value) <= MAX_NAME:  # Slack refuses the whole view for a longer one
        element["initial_value"] = value
    return element


def _multi_static(action_id: str, values: Sequence[str], chosen: Sequence[str]) -> Block:
    shown = options(values)
    element: Block = {
        "type": "multi_static_select",
        "action_id": action_id,
        "placeholder": _plain("Choose", 150),
        "options": shown,
    }
    initial = [o for o in shown if o["value"] in set(chosen)]
    if initial:
        element["initial_options"] = initial
    return element


def _multi_external(action_id: str, placeholder: str, min_query_length: int) -> Block:
    return {
        "type": "multi_external_select",
        "action_id": action_id,
        "placeholder": _plain(placeholder, 150),
        "min_query_length": min_query_length,
    }


def form_view(facts: FormFacts, channel: str) -> View:
    """The form, filled with the live system's names and sensible defaults; `unavailable_view`
    when hc1 has no mapping to offer (a select with no options is a view Slack refuses)."""
    if len(facts.objects) <= MAX_OPTIONS and not options(facts.objects):
        return unavailable_view(channel, f"{facts.old_addon} has no mappings: nothing to swap")
    blocks: list[Block] = [
        _mrkdwn(
            f"A swap of *{escape(facts.app)}*: the chosen mappings of {escape(facts.old_addon)} "
            f"(schema `{escape(facts.old_schema)}`) move to {escape(facts.new_addon)}, syncing "
            "into the new schema."
        ),
        _input(
            SWAP_ID,
            "Swap id",
            _text_input(SWAP_ID, facts.swap_id, "acme-2026-12-01"),
            hint="Lower-case letters, digits and dashes.",
        ),
        _input(
            NEW_SCHEMA,
            "New schema",
            _text_input(NEW_SCHEMA, facts.new_schema, "salesforce2"),
            hint="A schema that does not exist yet: hc2 syncs into it.",
        ),
    ]
    if len(facts.objects) <= MAX_OPTIONS:
        objects = _multi_static(OBJECTS_ACTION, facts.objects, [])
    else:
        objects = _multi_external(OBJECTS_ACTION, "Type an object's name", 1)
    blocks.append(
        _input(
            OBJECTS,
            f"Objects to move ({len(facts.objects)} mapped in {facts.old_addon})",
            objects,
        )
    )
    blocks.append(
        _input(
            FIELDS,
            "Fields to add",
            _multi_external(FIELDS_ACTION, "Type a field's name", 1),
            hint="Salesforce fields of the chosen objects, as Object.Field. Leave it empty to "
            "move the mappings unchanged.",
            optional=True,
        )
    )
    if facts.roles:
        blocks.append(
            _input(
                ROLES,
                "The app's database roles",
                _multi_static(ROLES, facts.roles, facts.default_roles),
                hint="Their search_path moves to the new schema.",
                optional=True,
            )
        )
    else:
        blocks.append(_context("No login role of the app was found in the database."))
    if facts.process_types:
        blocks.append(
            _input(
                PROCESS_TYPES,
                f"{facts.app}'s process types to stop",
                _multi_static(PROCESS_TYPES, facts.process_types, facts.default_process_types),
                hint="stop-writes scales them to zero; restore brings them back.",
                optional=True,
            )
        )
    else:
        blocks.append(_context(f"{escape(facts.app)} has no process type in its formation."))
    blocks.append(
        _input(
            AUTHORIZER,
            "Who authorizes hc2 in Salesforce",
            {"type": "users_select", "action_id": AUTHORIZER},
            optional=True,
        )
    )
    notes = [
        *(escape(note) for note in facts.notes),
        "Other apps on the database (`--also-stop`, `--readers`) and the other options: type "
        "`/hcswap plan new …` with them instead. The plan is checked against the live system "
        "when it is saved; the answer comes to you privately.",
    ]
    blocks.append(_context("\n".join(notes)))
    return _modal(
        channel,
        blocks,
        submit=True,
        app=facts.app,
        old_addon=facts.old_addon,
        old_schema=facts.old_schema,
        new_addon=facts.new_addon,
        bot_process_types=facts.bot_process_types,
    )


def suggestions(
    names: Mapping[str, Sequence[str]] | Sequence[str], typed: str
) -> list[dict[str, Any]]:
    """The options for what a person typed: `names` is a list of names, or fields by object
    (offered as Object.Field). Names that start with the text first, then those that hold it
    (a field's name, or with a dot typed the whole Object.Field); at most 100."""
    if isinstance(names, Mapping):
        values = [f"{obj}.{f}" for obj, fields in names.items() for f in fields]
    else:
        values = list(names)
    wanted = typed.strip().lower()
    starts, holds = [], []
    for value in values:
        # "rat" looks at the field's name; "account.r" at the whole of Object.Field
        key = value.lower() if "." in wanted else value.lower().rpartition(".")[2]
        if key.startswith(wanted):
            starts.append(value)
        elif wanted in key:
            holds.append(value)
    return options([*starts, *holds])


# -- the way back: a submitted view to the words of `plan new` ------------------------------------
@dataclass(frozen=True)
class Submitted:
    """What a person chose, as Slack sends it in `view.state.values`."""

    swap_id: str = ""
    new_schema: str = ""
    objects: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    process_types: list[str] = field(default_factory=list)
    authorizer: str | None = None


def _element(values: Mapping[str, Any], block_id: str) -> Mapping[str, Any]:
    block = values.get(block_id) or {}
    return next(iter(block.values()), {}) if isinstance(block, Mapping) else {}


def _selected(values: Mapping[str, Any], block_id: str) -> list[str]:
    chosen = _element(values, block_id).get("selected_options") or []
    return [str(o.get("value")) for o in chosen if isinstance(o, Mapping) and o.get("value")]


def read_state(values: Mapping[str, Any]) -> Submitted:
    """The form's state (`view["state"]["values"]`: block id -> action id -> value)."""
    return Submitted(
        swap_id=str(_element(values, SWAP_ID).get("value") or "").strip(),
        new_schema=str(_element(values, NEW_SCHEMA).get("value") or "").strip(),
        objects=_selected(values, OBJECTS),
        fields=_selected(values, FIELDS),
        roles=_selected(values, ROLES),
        process_types=_selected(values, PROCESS_TYPES),
        authorizer=_element(values, AUTHORIZER).get("selected_user") or None,
    )


def mappings_of(form: Submitted) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The plan's mappings (object -> fields to add) and the errors of fields whose object
    was not chosen."""
    mappings: dict[str, list[str]] = {obj: [] for obj in form.objects}
    strays: list[str] = []
    for value in form.fields:
        obj, _, name = value.partition(".")
        if obj in mappings and name:
            if name not in mappings[obj]:
                mappings[obj].append(name)
        else:
            strays.append(value)
    errors: dict[str, str] = {}
    if strays:
        errors[FIELDS] = _cut(
            f"Choose their objects above too, or take them out: {', '.join(strays)}", MAX_ERROR
        )
    if not form.objects:
        errors[OBJECTS] = "Choose at least one object to move."
    return mappings, errors


def command_words(form: Submitted, facts: Mapping[str, Any]) -> list[str]:
    """The words of the `plan new` command the form stands for (`facts`: the view's metadata)."""
    mappings, _ = mappings_of(form)
    words = ["plan", "new", "--swap-id", form.swap_id, "--new-schema", form.new_schema]
    words += ["--mappings", format_mappings(mappings)]
    for flag, key in (
        ("--old-addon", "old_addon"),
        ("--new-addon", "new_addon"),
        ("--old-schema", "old_schema"),
    ):
        default = Plan.model_fields[key].default
        if facts.get(key) and facts[key] != default:  # the defaults go unsaid, as when typed
            words += [flag, str(facts[key])]
    if form.roles:
        words += ["--roles", ",".join(form.roles)]
    if form.process_types:
        words += ["--process-types", ",".join(form.process_types)]
    bots = [str(t) for t in facts.get("bot_process_types") or []]
    if bots:
        words += ["--bot-process-types", ",".join(bots)]
    if form.authorizer:
        words += ["--authorizer", form.authorizer]
    return words


# Which field a problem of the Plan model belongs to.
_BLOCK_OF_FIELD = {
    "swap_id": SWAP_ID,
    "new_schema": NEW_SCHEMA,
    "old_schema": NEW_SCHEMA,
    "mappings": OBJECTS,
    "roles": ROLES,
    "process_types": PROCESS_TYPES,
    "bot_process_types": PROCESS_TYPES,
    "authorizer": AUTHORIZER,
}


def field_errors(exc: ValidationError) -> dict[str, str]:
    """A Plan's validation errors by the form's block id: each shown beside its field."""
    errors: dict[str, str] = {}
    for err in exc.errors(include_input=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        loc = [str(part) for part in err.get("loc", ())]
        block = _BLOCK_OF_FIELD.get(loc[0]) if loc else None
        if loc and loc[0] == "mappings" and "field of" in message:
            block = FIELDS
        if block is None:  # the plan as a whole: name the field the message is about
            block = _block_named_in(message)
        errors[block] = _cut(f"{errors[block]}; {message}" if block in errors else message, 300)
    return errors


def _block_named_in(message: str) -> str:
    if "schema" in message:
        return NEW_SCHEMA
    if "process type" in message:
        return PROCESS_TYPES
    return SWAP_ID


def check(
    form: Submitted, facts: Mapping[str, Any], *, app: str | None, actor: str
) -> dict[str, str]:
    """What is wrong with the form on its own (the Plan model's checks, no live system), by
    block id; empty when the plan can go to the engine."""
    mappings, errors = mappings_of(form)
    if not form.swap_id:
        errors[SWAP_ID] = "Give the swap an id, e.g. acme-2026-12-01."
    if not form.new_schema:
        errors[NEW_SCHEMA] = "Name the new schema, e.g. salesforce2."
    if not app:
        errors.setdefault(SWAP_ID, "swapbot has no HEROKU_APP_NAME: the plan has no app.")
    fields: dict[str, Any] = {
        "swap_id": form.swap_id,
        "app": app or "",
        "new_schema": form.new_schema,
        "mappings": mappings or {"-": []},
        "roles": form.roles,
        "process_types": form.process_types,
        "bot_process_types": [str(t) for t in facts.get("bot_process_types") or []],
        "authorizer": form.authorizer,
        "created_by": actor,
    }
    for key in ("old_addon", "new_addon", "old_schema"):
        if facts.get(key):
            fields[key] = str(facts[key])
    try:
        Plan(**fields)
    except ValidationError as exc:
        for block, message in field_errors(exc).items():
            if not (block == OBJECTS and not mappings):  # said already: choose an object
                errors.setdefault(block, message)
    return errors
