"""The plan as a form: the modal `/hcswap plan new` opens when typed without arguments.

Pure functions: the views (`loading_view`, `form_view`, `unavailable_view`, and after a
submission `checking_view`, `saved_view`, `result_view`), the options of the field search
(`suggestions`), and the way back, from a submitted view's state to the words of the equivalent
`plan new` command (`read_state`, `command_words`) with the errors Slack shows beside each field
(`check`, `field_errors`), and the live system's problems placed under theirs (`place`).

Slack's limits hold by construction (https://docs.slack.dev/reference/views/modal-views,
https://docs.slack.dev/reference/block-kit/block-elements/multi-select-menu-element): a title of
at most 24 characters, at most 100 blocks, at most 100 options in a static select (more objects
than that are searched, like the fields, through an external select), option texts of at most 75
characters and values of at most 150.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from swapbot.slack.blocks.text import escape
from swapbot.swap.plan import Plan, format_mappings, parse_apps

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
ALSO_STOP = "also_stop"  # other apps' process types that stop-writes stops too
READERS = "readers"  # other apps left running: they only read
STALE_SESSIONS = "stale_sessions"
QUIET_SECONDS = "quiet_seconds"
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
    # Every other app attached to the database -> its process types ([] when its formation
    # could not be read: it can be named a reader here, a writer only by typing the command).
    other_apps: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def dumps(self) -> str:
        """As JSON, kept in Redis while the form is open (to draw it again with errors)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str | bytes) -> FormFacts:
        return cls(**json.loads(text))


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
    return _multi_options(action_id, options(values), chosen)


def _multi_options(action_id: str, shown: list[dict[str, Any]], chosen: Sequence[str]) -> Block:
    shown = shown[:MAX_OPTIONS]
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


def _multi_external(
    action_id: str, placeholder: str, min_query_length: int, chosen: Sequence[str] = ()
) -> Block:
    element: Block = {
        "type": "multi_external_select",
        "action_id": action_id,
        "placeholder": _plain(placeholder, 150),
        "min_query_length": min_query_length,
    }
    initial = options(chosen)
    if initial:
        element["initial_options"] = initial
    return element


# What stale sessions of the app's roles get when the app comes back (the plan's
# `stale_sessions`): the radio buttons' values and texts.
STALE_CHOICES = {
    "terminate": "End them before the app comes back",
    "refuse": "Keep the outage on until a person has ended them",
}


def _radio(action_id: str, choices: Mapping[str, str], chosen: str) -> Block:
    shown = [option(value, text) for value, text in choices.items()]
    initial = next((o for o in shown if o["value"] == chosen), shown[0])
    return {
        "type": "radio_buttons",
        "action_id": action_id,
        "options": shown,
        "initial_option": initial,
    }


def _number(action_id: str, value: str, least: int, most: int) -> Block:
    element: Block = {
        "type": "number_input",
        "action_id": action_id,
        "is_decimal_allowed": True,
        "min_value": str(least),
        "max_value": str(most),
    }
    if value:
        element["initial_value"] = value
    return element


def _warning(text: str) -> Block:
    """A problem the live system found, under the field it is about: a view updated by the
    worker cannot carry Slack's own field errors (those answer a submission, within 3 s)."""
    return _context(f":warning: {escape(_cut(text, 1900))}")


def form_view(
    facts: FormFacts,
    channel: str,
    chosen: Submitted | None = None,
    problems: Mapping[str, str] | None = None,
    banner: Sequence[str] = (),
) -> View:
    """The form, filled with the live system's names and sensible defaults; `unavailable_view`
    when hc1 has no mapping to offer (a select with no options is a view Slack refuses).
    Drawn again after the live system refused a submission: with what the person `chosen`,
    the `problems` under their fields (by block id) and the others (`banner`) at the top."""
    if len(facts.objects) <= MAX_OPTIONS and not options(facts.objects):
        return unavailable_view(channel, f"{facts.old_addon} has no mappings: nothing to swap")
    problems = problems or {}
    was = chosen or Submitted(
        swap_id=facts.swap_id,
        new_schema=facts.new_schema,
        roles=facts.default_roles,
        process_types=facts.default_process_types,
    )
    blocks: list[Block] = [
        _mrkdwn(
            f"A swap of *{escape(facts.app)}*: the chosen mappings of {escape(facts.old_addon)} "
            f"(schema `{escape(facts.old_schema)}`) move to {escape(facts.new_addon)}, syncing "
            "into the new schema."
        ),
    ]
    if banner or problems:
        lines = [f"• {escape(_cut(line, 500))}" for line in banner]
        if problems:
            lines.append("• what to change is marked :warning: below its field")
        text = "\n".join(lines)
        blocks.append(_mrkdwn(_cut(f":no_entry: *The plan was not saved:*\n{text}", 3000)))

    def add(block: Block) -> None:
        blocks.append(block)
        if block.get("block_id") in problems:
            blocks.append(_warning(problems[block["block_id"]]))

    add(
        _input(
            SWAP_ID,
            "Swap id",
            _text_input(SWAP_ID, was.swap_id, "acme-2026-12-01"),
            hint="Lower-case letters, digits and dashes.",
        )
    )
    add(
        _input(
            NEW_SCHEMA,
            "New schema",
            _text_input(NEW_SCHEMA, was.new_schema, "salesforce2"),
            hint="A schema that does not exist yet: hc2 syncs into it.",
        )
    )
    if len(facts.objects) <= MAX_OPTIONS:
        objects = _multi_static(OBJECTS_ACTION, facts.objects, was.objects)
    else:
        objects = _multi_external(OBJECTS_ACTION, "Type an object's name", 1, was.objects)
    add(
        _input(
            OBJECTS,
            f"Objects to move ({len(facts.objects)} mapped in {facts.old_addon})",
            objects,
        )
    )
    add(
        _input(
            FIELDS,
            "Fields to add",
            _multi_external(FIELDS_ACTION, "Type a field's name", 1, was.fields),
            hint="Salesforce fields of the chosen objects, as Object.Field. Leave it empty to "
            "move the mappings unchanged.",
            optional=True,
        )
    )
    if facts.roles:
        add(
            _input(
                ROLES,
                "The app's database roles",
                _multi_static(ROLES, facts.roles, was.roles),
                hint="Their search_path moves to the new schema.",
                optional=True,
            )
        )
    else:
        blocks.append(_context("No login role of the app was found in the database."))
    if facts.process_types:
        add(
            _input(
                PROCESS_TYPES,
                f"{facts.app}'s process types to stop",
                _multi_static(PROCESS_TYPES, facts.process_types, was.process_types),
                hint="stop-writes scales them to zero; restore brings them back.",
                optional=True,
            )
        )
    else:
        blocks.append(_context(f"{escape(facts.app)} has no process type in its formation."))
    for block in _other_apps(facts, was):
        add(block)
    add(
        _input(
            AUTHORIZER,
            "Who authorizes hc2 in Salesforce",
            {"type": "users_select", "action_id": AUTHORIZER}
            | ({"initial_user": was.authorizer} if was.authorizer else {}),
            optional=True,
        )
    )
    add(
        _input(
            STALE_SESSIONS,
            "Sessions that predate the switch (a pooler's, say)",
            _radio(STALE_SESSIONS, STALE_CHOICES, was.stale_sessions),
            hint="They keep the old search_path: no such session may be left when the app "
            "comes back.",
        )
    )
    add(
        _input(
            QUIET_SECONDS,
            "Seconds with no write before drain",
            _number(QUIET_SECONDS, was.quiet_seconds, 0, 600),
            hint="drain waits until no role of the app has written for this long.",
            optional=True,
        )
    )
    shown = {b.get("block_id") for b in blocks}
    for block_id in sorted(problems.keys() - shown):
        blocks.append(_warning(problems[block_id]))  # about a field this form does not show
    notes = [
        *(escape(note) for note in facts.notes),
        "The plan is checked against the live system when it is saved: Heroku Connect, "
        "Salesforce, the database and every app attached to it. The form stays open until "
        "it is saved, with what to change if it cannot be.",
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


def _other_apps(facts: FormFacts, was: Submitted) -> list[Block]:
    """Every other app attached to the database, to name as a writer to stop (its process
    types) or as a reader left running; the plan is refused while one is left unnamed."""
    if not facts.other_apps:
        return [_context("No other app is attached to the database.")]
    listed = ", ".join(sorted(facts.other_apps))
    blocks: list[Block] = []
    writable = [
        option(f"{app}:{t}", f"{app}: {t}")
        for app, types in sorted(facts.other_apps.items())
        for t in types
        if len(f"{app}:{t}") <= MAX_OPTION_VALUE
    ]
    if writable:
        blocks.append(
            _input(
                ALSO_STOP,
                "Other apps' process types to stop",
                _multi_options(ALSO_STOP, writable, was.also_stop),
                hint=f"The database is also attached to {_cut(listed, 1500)}. Name each "
                "here (stop-writes stops these too) or below (it only reads).",
                optional=True,
            )
        )
    blocks.append(
        _input(
            READERS,
            "Other apps that only read (left running)",
            _multi_static(READERS, sorted(facts.other_apps), was.readers),
            optional=True,
        )
    )
    unreadable = sorted(app for app, types in facts.other_apps.items() if not types)
    if unreadable:
        blocks.append(
            _context(
                f"The formation of {escape(', '.join(unreadable))} could not be read: to stop "
                "it, type `/hcswap plan new … --also-stop APP:TYPES`."
            )
        )
    return blocks


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
    also_stop: list[str] = field(default_factory=list)  # "app:type"
    readers: list[str] = field(default_factory=list)
    stale_sessions: str = "terminate"
    quiet_seconds: str = "10"  # as Slack sends a number: text

    @property
    def other_writers(self) -> dict[str, list[str]]:
        """The chosen `app:type`s as the plan's other writers (app -> process types)."""
        writers: dict[str, list[str]] = {}
        for app, types in (next(iter(parse_apps(v).items())) for v in self.also_stop if v):
            writers.setdefault(app, []).extend(t for t in types if t not in writers.get(app, []))
        return writers


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
        also_stop=_selected(values, ALSO_STOP),
        readers=_selected(values, READERS),
        stale_sessions=str(
            (_element(values, STALE_SESSIONS).get("selected_option") or {}).get("value")
            or "terminate"
        ),
        quiet_seconds=str(_element(values, QUIET_SECONDS).get("value") or "").strip(),
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
    if form.also_stop:
        words += ["--also-stop", format_mappings(form.other_writers)]
    if form.readers:
        words += ["--readers", ",".join(form.readers)]
    if form.stale_sessions != Plan.model_fields["stale_sessions"].default:
        words += ["--stale-sessions", form.stale_sessions]
    quiet = _seconds(form.quiet_seconds)
    if quiet is not None and quiet != Plan.model_fields["quiet_seconds"].default:
        words += ["--quiet-seconds", form.quiet_seconds]
    return words


def _seconds(text: str) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


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
    "other_writers": ALSO_STOP,
    "readers": READERS,
    "stale_sessions": STALE_SESSIONS,
    "quiet_seconds": QUIET_SECONDS,
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
    if "writer or a reader" in message:
        return READERS
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
        "other_writers": form.other_writers,
        "readers": form.readers,
        "stale_sessions": form.stale_sessions,
        "created_by": actor,
    }
    if form.quiet_seconds:
        if _seconds(form.quiet_seconds) is None:
            errors[QUIET_SECONDS] = "A number of seconds, from 0 to 600."
        else:
            fields["quiet_seconds"] = _seconds(form.quiet_seconds)
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


# What the live system says (the engine's `check_plan`), by the field each problem is about.
_LIVE_PROBLEMS = (
    ("has no field", FIELDS),
    ("has no mapping for", OBJECTS),
    ("Salesforce has no object", OBJECTS),
    ("already exists", NEW_SCHEMA),
    ("does not exist in the database", ROLES),
    ("add it to --roles", ROLES),
    ("also attached to", ALSO_STOP),
    ("is not attached to", ALSO_STOP),
    ("has no process type", ALSO_STOP),
    ("formation", ALSO_STOP),
    ("swapbot's own app", ALSO_STOP),
)


def place(
    problems: Sequence[str], form: Submitted, facts: FormFacts
) -> tuple[dict[str, str], list[str]]:
    """The live system's problems with a submitted plan: those about one field by its block
    id, the others (an add-on that cannot be read, another swap in progress) on their own."""
    by_block: dict[str, str] = {}
    rest: list[str] = []
    stoppable = any(facts.other_apps.values())  # else the form has no ALSO_STOP field
    for problem in problems:
        block = next((b for key, b in _LIVE_PROBLEMS if key in problem), None)
        if problem.startswith(f"cannot read {facts.app}'s formation"):
            block = PROCESS_TYPES if facts.process_types else None  # the swapped app's own
        elif block == ALSO_STOP and (
            not stoppable or any(problem.startswith(f"{app} ") for app in form.readers)
        ):
            block = READERS  # about an app the person named a reader, or can only name one
        if block is None:
            rest.append(problem)
        else:
            by_block[block] = f"{by_block[block]}; {problem}" if block in by_block else problem
    return by_block, rest


def checking_view(channel: str, facts: Mapping[str, Any]) -> View:
    """What the modal shows while the worker checks the plan against the live system."""
    text = (
        ":hourglass_flowing_sand: Checking the plan against Heroku Connect, Salesforce and the "
        "database… This takes a few seconds; the form comes back if something must change."
    )
    later = (
        "Closing this does not stop the check: the answer then comes to you privately in the "
        "channel. If nothing changes here within a minute, close it."
    )
    kept = {k: v for k, v in facts.items() if k != "channel"}
    view = _modal(channel, [_mrkdwn(text), _context(later)], submit=False, **kept)
    view["close"] = _plain("Close", MAX_TITLE)
    return view


def result_view(channel: str, message: str, command: str) -> View:
    """The plan was not saved and the form cannot be drawn again (its names expired): why, and
    the command it stood for, to correct and type."""
    typed = escape(_cut(command, 1200)).replace("`", "'")  # a backtick would end the code
    text = (
        f":no_entry: *The plan was not saved:* {escape(_cut(message, 1500))}\n"
        f"Type it instead, with what must change:\n```{typed}```"
    )
    view = _modal(channel, [_mrkdwn(text)], submit=False)
    view["close"] = _plain("Close", MAX_TITLE)
    return view


def saved_view(channel: str, message: str, swap_id: str) -> View:
    """The plan is saved: what the engine said, and where the swap goes on."""
    text = (
        f":white_check_mark: {escape(_cut(message, 1500))}\n"
        f"The swap's card is in <#{channel}>: its *Run next* button starts the first step."
        if channel
        else f":white_check_mark: {escape(_cut(message, 1500))}"
    )
    view = _modal(channel, [_mrkdwn(text)], submit=False, swap_id=swap_id)
    view["close"] = _plain("Done", MAX_TITLE)
    return view
