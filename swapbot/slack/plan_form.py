"""`/hcswap plan new` as a form: opened by the web process, filled and saved by the worker.

The web process (`swapbot.slack.app`), where every answer must leave within Slack's 3 seconds:
- `plan new` without arguments is authorized as `plan new` is (operators, in the swap channel)
  and acknowledged with an empty body; right after, on a thread of its own, `open_form` opens a
  small "Reading hc1's mappings…" modal with the command's trigger_id (which Slack honours for
  3 seconds, once: it cannot wait for a worker,
  https://docs.slack.dev/tools/bolt-python/concepts/opening-modals) and hands the worker the
  view's id and hash, once per trigger_id (`jobs.push_once`);
- `suggest` answers the external selects' `block_suggestion`s (fields to add, and objects when
  hc1 has more than 100 mappings) from what the worker cached in Redis, never from Heroku
  (https://docs.slack.dev/tools/bolt-python/concepts/select-menu-options);
- `submitted` answers the `view_submission`: what the form says on its own (the Plan model: a
  bad schema name, a swap id, a field of an object not chosen) is answered at once as errors
  beside the fields (`response_action: errors`,
  https://docs.slack.dev/tools/bolt-python/concepts/view-submissions); otherwise the modal
  turns into "Checking the plan…" (`response_action: update`) and the equivalent `plan new`
  command is queued.

The worker: `fill_form` reads hc1's mappings and their Salesforce fields (HC's describe, cached
for the field search), the database's login roles, the app's formation and every other app
attached to its database, and `views.update`s the modal with the form (the view's hash guards
against a person's edits in between). `save_plan` runs the equivalent `plan new` exactly as if
typed (`swapbot.slack.work.run_command`), so every check of the engine applies, live ones
included, and puts the answer in the modal: the saved plan, or the form again as the person
left it with each problem the live system found under its field. (Slack's own field errors
answer a submission within its 3 seconds; the live checks take longer, so the worker marks the
fields in the view it draws again.)
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from slack_sdk import WebClient

from swapbot import commands, config, jobs
from swapbot.slack import access
from swapbot.slack.blocks import plan_form as form
from swapbot.slack.client import webhook
from swapbot.swap.store import Store

if TYPE_CHECKING:
    from swapbot.slack.work import Told

log = logging.getLogger(__name__)

DESCRIBES_AT_ONCE = 8  # HC's describe calls in flight while the form is filled
FORM_TTL = 3600  # a form's cached names live this long: Slack keeps a modal open for hours [U]
TRIGGER_SEEN_TTL = 3600
SUBMISSION_SEEN_TTL = 3600
DEFAULT_ADDON = "hc1"  # the grammar's default old add-on (`--old-addon`)
DEFAULT_NEW_ADDON = "hc2"


def is_form_request(text: str) -> bool:
    """`plan new` with nothing after it: the form, not the command's usage."""
    return text.split() == ["plan", "new"]


def refusal(settings: config.Settings, user: str, channel: str) -> str | None:
    """Why `user` may not open the form from `channel`: the rules of `plan new`."""
    return access.refusal(commands.Command("plan", ("new",)), user, channel, settings)


# -- the web process ------------------------------------------------------------------------------
def open_form(
    client: WebClient,
    settings: config.Settings,
    redis: Any,
    store: Store,
    command: dict[str, Any],
) -> str | None:
    """Open the modal with the command's trigger_id and queue the worker that fills it: the
    view's id, or None when it could not be opened (then the person is told, privately)."""
    user, channel = str(command.get("user_id") or ""), str(command.get("channel_id") or "")
    trigger = str(command.get("trigger_id") or "")
    loading = form.loading_view(channel, settings.heroku_app_name, DEFAULT_ADDON)
    try:
        opened = client.views_open(trigger_id=trigger, view=loading)
    except Exception as exc:  # expired_trigger_id, Slack down: the command still works
        error = getattr(getattr(exc, "response", None), "get", lambda _k: None)("error")
        log.warning("the plan form was not opened for %s: %s", user, error or type(exc).__name__)
        _tell(
            command.get("response_url"),
            f"Slack would not open the form ({error or 'no answer'}); nothing was saved. "
            "Try again, or type the plan: `/hcswap help plan`.",
        )
        return None
    view = opened["view"]
    view_id, view_hash = str(view["id"]), str(view.get("hash") or "")
    try:
        jobs.push_once(
            redis,
            settings,
            store.key("dedupe", "slack-form", trigger),
            TRIGGER_SEEN_TTL,
            "swapbot.slack.plan_form.fill_form",
            view_id,
            view_hash,
            user,
            channel,
            key=trigger,
            description=f"plan form for {user}",
        )
    except RedisError:
        log.error("Redis unreachable: the plan form of %s not filled", user)
        why = "swapbot cannot reach its Redis right now. Close this and try again in a minute."
        try:
            client.views_update(
                view_id=view_id, hash=view_hash, view=form.unavailable_view(channel, why)
            )
        except Exception as exc:
            log.warning("could not say so in the plan form: %s", type(exc).__name__)
    return view_id


def _tell(response_url: Any, text: str) -> None:
    if not response_url:
        return
    try:
        webhook(str(response_url)).send(text=text, response_type="ephemeral")
    except Exception as exc:
        log.warning("could not answer about the plan form: %s", type(exc).__name__)


def form_key(store: Store, view_id: str) -> str:
    """Where the worker keeps what it read for a form (`FormFacts`): for the searches, and to
    draw the form again after a refusal."""
    return store.key("slack", "plan-form", view_id)


def describe_key(store: Store, addon: str, obj: str) -> str:
    """Where the worker keeps the fields HC's describe gave for an object of an add-on."""
    return store.key("slack", "describe", addon, obj)


def suggest(store: Store, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The options for a `block_suggestion` of the form, from Redis only: at most 100, none
    when the form is unknown (expired, or never filled) or Redis does not answer."""
    view = body.get("view") or {}
    action_id = str(body.get("action_id") or "")
    typed = str(body.get("value") or "")
    try:
        raw = store.redis.get(form_key(store, str(view.get("id") or "")))
        if raw is None:
            return []
        facts = form.FormFacts.loads(raw)
        if action_id == form.OBJECTS_ACTION:
            return form.suggestions(facts.objects, typed)
        state = (view.get("state") or {}).get("values") or {}
        chosen = [o for o in form.read_state(state).objects if o in facts.objects] or facts.objects
        keys = [describe_key(store, facts.old_addon, o) for o in chosen]
        found = store.redis.mget(keys)
    except (RedisError, ValueError, TypeError, AttributeError) as exc:
        log.warning("no field suggestions: %s", type(exc).__name__)
        return []
    fields = {obj: json.loads(raw) for obj, raw in zip(chosen, found, strict=True) if raw}
    return form.suggestions(fields, typed)


def submitted(
    settings: config.Settings, redis: Any, store: Store, body: dict[str, Any]
) -> dict[str, Any]:
    """The answer to a `view_submission` of the form (Bolt's `ack` keywords): errors beside the
    fields, or, once the equivalent `plan new` is queued, the modal turned into "Checking…"
    (`update`) until the worker puts the answer in it."""
    user = str((body.get("user") or {}).get("id") or "")
    view = body.get("view") or {}
    facts = form.read_metadata(view.get("private_metadata"))
    channel = str(facts.get("channel") or "")
    state = form.read_state((view.get("state") or {}).get("values") or {})
    errors = form.check(state, facts, app=settings.heroku_app_name, actor=user)
    if errors:
        return {"response_action": "errors", "errors": errors}
    text = shlex.join(form.command_words(state, facts))
    try:
        cmd = commands.parse(text)
    except commands.UsageError as exc:  # never for what check() let through
        return {"response_action": "errors", "errors": {form.SWAP_ID: str(exc)[:300]}}
    reason = access.refusal(cmd, user, channel, settings)
    if reason:
        return {"response_action": "errors", "errors": {form.SWAP_ID: reason[:300]}}
    key = f"{view.get('id')}:{view.get('hash')}"
    try:
        jobs.push_once(
            redis,
            settings,
            store.key("dedupe", "slack-form-submit", key),
            SUBMISSION_SEEN_TTL,
            "swapbot.slack.plan_form.save_plan",
            text,
            user,
            channel,
            time.time(),
            str(view.get("id") or ""),
            asdict(state),
            key=key,
            description=f"/hcswap plan new (form) by {user}",
        )
    except RedisError:
        log.error("Redis unreachable: the plan form of %s not saved", user)
        why = "swapbot cannot reach its Redis right now: nothing was saved. Try again in a minute."
        return {"response_action": "errors", "errors": {form.SWAP_ID: why}}
    # The modal stays open, saying it checks: the worker puts in it the answer of the live
    # system (saved, or the form again with what to change beside the fields).
    return {"response_action": "update", "view": form.checking_view(channel, facts)}


# -- the worker -----------------------------------------------------------------------------------
def fill_form(view_id: str, view_hash: str, user: str, channel: str) -> dict[str, Any]:
    """Read the live system and put the form in the modal (`views.update`). Never raises: what
    could not be read is said in the modal, and so is a form Slack would not take (the modal
    never stays on "Reading…")."""
    from swapbot.slack import work

    settings: config.Settings | None = None
    client: WebClient | None = None
    try:
        settings, client, engine = work.context()
        facts = gather(engine, settings, view_id)
        view = form.form_view(facts, channel)
        status = "filled" if view.get("submit") else "unavailable"
    except Exception as exc:
        log.exception("the plan form of %s could not be filled", user)
        if client is None:
            settings, client = work.answerer()
        view = form.unavailable_view(channel, work.why(exc, settings))
        status = "failed"
    if client is None:
        return {"status": "failed", "message": "no Slack client"}
    try:
        client.views_update(view_id=view_id, hash=view_hash, view=view)
    except Exception as exc:  # closed meanwhile (not_found), edited (hash_conflict), refused
        log.warning("the plan form of %s was not updated: %s", user, exc)
        if status == "failed":
            return {"status": "failed", "message": str(exc)}
        why = f"Slack would not show it ({_slack_error(exc)})"
        try:  # once, so the person is told rather than left with "Reading…"
            client.views_update(
                view_id=view_id, hash=view_hash, view=form.unavailable_view(channel, why)
            )
        except Exception as again:
            log.warning("nor could the plan form of %s say why: %s", user, again)
        return {"status": "failed", "message": str(exc)}
    return {"status": status, "view_id": view_id}


def _slack_error(exc: Exception) -> str:
    """Slack's error code for a failed call (e.g. invalid_arguments), or the exception's type."""
    response = getattr(exc, "response", None)
    error = response.get("error") if response is not None else None
    return str(error or type(exc).__name__)


def save_plan(
    text: str,
    user: str,
    channel: str,
    queued_at: float,
    view_id: str = "",
    chosen: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Save the plan a form stood for, as the typed `plan new` would be (every check of the
    engine, live ones included), and answer in the modal, still open on "Checking…": the
    saved plan, or the form again with what the person chose and each problem the live system
    found under its field (or, when the form cannot be drawn again, the answer with the command
    to type). Only when the modal is gone (closed meanwhile) does the answer come privately,
    as an ephemeral message in the channel with the command the form stood for. It is not
    copied to the channel or the swap's thread."""
    from swapbot.slack.work import run_command

    told = _in_form(view_id, channel, text, queued_at, chosen or {}) if view_id else None
    return run_command(text, user, channel, None, queued_at, thread_fallback=False, told=told)


# Slack applies the submission's answer (`response_action: update`, "Checking…") as it gets
# it, within its 3 seconds; an answer of the worker's sent sooner would be covered by it.
SETTLE_SECONDS = 1.0


def _in_form(
    view_id: str, channel: str, text: str, queued_at: float, chosen: dict[str, Any]
) -> Told:
    """The answer to a form's save, in its modal."""

    def told(client: WebClient, engine: Any, reply: commands.Reply) -> bool:
        if reply.status == "done":
            view = form.saved_view(channel, reply.message, reply.swap_id or "")
        else:
            view = _refused_view(engine, view_id, channel, text, chosen, reply)
        # The web dyno's clock dated queued_at: never wait longer than the settling itself.
        time.sleep(min(SETTLE_SECONDS, max(0.0, queued_at + SETTLE_SECONDS - time.time())))
        try:
            client.views_update(view_id=view_id, view=view)
        except Exception as exc:  # closed meanwhile (not_found), or refused
            log.warning("the plan form's answer was not shown in it: %s", _slack_error(exc))
            return False
        return True

    return told


def _refused_view(
    engine: Any,
    view_id: str,
    channel: str,
    text: str,
    chosen: dict[str, Any],
    reply: commands.Reply,
) -> dict[str, Any]:
    """The form again, as the person left it, with what the live system said under each
    field; when it cannot be drawn again (its names gone from Redis, no engine), the answer
    and the command to type instead."""
    facts, state = None, None
    try:
        state = form.Submitted(**chosen)
        raw = engine.store.redis.get(form_key(engine.store, view_id)) if engine else None
        facts = form.FormFacts.loads(raw) if raw else None
    except (RedisError, ValueError, TypeError) as exc:
        log.warning("the plan form cannot be drawn again: %s", type(exc).__name__)
    if facts is None or state is None:
        return form.result_view(channel, reply.message, f"/hcswap {text}")
    if reply.problems:
        problems, banner = form.place(reply.problems, state, facts)
    else:
        problems, banner = {}, [reply.message]
    return form.form_view(facts, channel, state, problems, banner)


def gather(engine: Any, settings: config.Settings, view_id: str) -> form.FormFacts:
    """The live facts the form offers: hc1's mappings (their describes cached for the field
    search), the database's login roles, the app's process types, and free defaults."""
    app = settings.heroku_app_name
    if not app:
        raise ValueError("HEROKU_APP_NAME is not set")
    if engine.clients is None:
        raise ValueError("swapbot has no Heroku clients")
    connect, platform = engine.clients
    current = engine.current_plan()
    same = current is not None and current.app == app
    old_addon = current.old_addon if same else DEFAULT_ADDON
    new_addon = current.new_addon if same else DEFAULT_NEW_ADDON
    ref = connect.find_connection(app, old_addon)
    connection = connect.get_connection(ref)
    old_schema = connection.schema_name or "salesforce"
    objects = sorted({m.object_name for m in connection.mappings if m.object_name})
    mapped = {
        m.object_name: set((m.config.fields if m.config else {}) or {})
        for m in connection.mappings
        if m.object_name
    }
    notes = _cache_describes(engine.store, connect, ref, old_addon, objects, mapped)
    roles, default_roles, taken = _database_facts(settings, old_schema)
    types, bots = _formation(platform, app)
    day = datetime.now(UTC).strftime("%Y%m%d")
    new_schema = suggested_schema(old_schema, day, taken)
    if len(objects) > form.MAX_OPTIONS:
        notes.append(f"{old_addon} has {len(objects)} mappings: type to find an object.")
    facts = form.FormFacts(
        app=app,
        old_addon=old_addon,
        old_schema=old_schema,
        new_addon=new_addon,
        swap_id=_free_swap_id(engine.store, f"{app}-{day}"),
        new_schema=new_schema,
        objects=objects,
        roles=roles,
        default_roles=default_roles,
        process_types=types,
        default_process_types=types,
        bot_process_types=bots,
        other_apps=_other_apps(platform, app, engine.own_app),
        notes=notes,
    )
    engine.store.redis.set(form_key(engine.store, view_id), facts.dumps(), ex=FORM_TTL)
    return facts


def suggested_schema(old_schema: str, day: str, taken: set[str]) -> str:
    """A new schema's name to offer: salesforce2, else the old one's with the day (cut so that
    it fits PostgreSQL's 63 characters, and the form's field), one that does not exist yet;
    "" (the person types one) when all are taken."""
    candidates = ["salesforce2"]
    for suffix in (f"_{day}", f"_{day}_2"):
        candidates.append(old_schema[: form.MAX_NAME - len(suffix)] + suffix)
    return next((c for c in candidates if c not in taken and len(c) <= form.MAX_NAME), "")


def _cache_describes(
    store: Store,
    connect: Any,
    ref: Any,
    addon: str,
    objects: list[str],
    mapped: dict[str, set[str]],
) -> list[str]:
    """Describe each object once and keep the fields a swap could add (those not mapped yet)
    for the field search; the objects that could not be described, as a note. A few at a
    time: one after the other, hc1's 300 mappings kept the modal on "Reading…" for a minute."""

    def describe(obj: str) -> list[Any] | None:
        try:
            return list(connect.describe(ref, obj).get("fields") or [])
        except Exception as exc:  # the object is still offered; its fields cannot be searched
            log.warning("describe %s failed: %s", obj, exc)
            return None

    with ThreadPoolExecutor(DESCRIBES_AT_ONCE, thread_name_prefix="swapbot-describe") as pool:
        found = list(pool.map(describe, objects))
    missing = []
    pipe = store.redis.pipeline(transaction=False)
    for obj, described in zip(objects, found, strict=True):
        if described is None:
            missing.append(obj)
            continue
        names = sorted(
            str(f["name"])
            for f in described
            if isinstance(f, dict) and f.get("name") and f["name"] not in mapped.get(obj, set())
        )
        pipe.set(describe_key(store, addon, obj), json.dumps(names), ex=FORM_TTL)
    pipe.execute()
    if not missing:
        return []
    return [f"Could not read the Salesforce fields of {', '.join(missing)}: type them instead."]


ROLES_SQL = """
SELECT r.rolname,
       EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s
                WHERE s.setrole = r.oid
                  AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                             WHERE datname = current_database()))
                  AND EXISTS (SELECT 1 FROM unnest(s.setconfig) c WHERE c LIKE 'search\\_path=%%'))
  FROM pg_catalog.pg_roles r
 WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname !~ '^pg_'
   AND (has_schema_privilege(r.oid, %(schema)s, 'USAGE')
        OR EXISTS (SELECT 1 FROM pg_catalog.pg_db_role_setting s WHERE s.setrole = r.oid
                     AND s.setdatabase = (SELECT oid FROM pg_catalog.pg_database
                                           WHERE datname = current_database())))
 ORDER BY 1
"""


def _database_facts(
    settings: config.Settings, old_schema: str
) -> tuple[list[str], list[str], set[str]]:
    """The app's login roles (those that reach hc1's schema or have settings in this database;
    the roles of other databases on a shared server are left out), the ones that set their own
    search_path (chosen at first), and the schemas that exist."""
    import psycopg

    from swapbot.swap.journal import APPLICATION_NAME

    url = config.secret(settings.database_url)
    if not url:
        raise ValueError("DATABASE_URL is not set")
    with psycopg.connect(
        url, connect_timeout=10, autocommit=True, application_name=APPLICATION_NAME
    ) as conn:
        schema_exists = conn.execute(
            "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (old_schema,)
        ).fetchone()
        rows = conn.execute(
            ROLES_SQL, {"schema": old_schema if schema_exists else "public"}
        ).fetchall()
        taken = {
            r[0] for r in conn.execute("SELECT nspname FROM pg_catalog.pg_namespace").fetchall()
        }
    roles = [str(r[0]) for r in rows][: form.MAX_OPTIONS]
    return roles, [str(r[0]) for r in rows if r[1] and r[0] in roles], taken


def _formation(platform: Any, app: str) -> tuple[list[str], list[str]]:
    """The app's process types to stop, and those that run swapbot itself (never stopped)."""
    types: list[str] = []
    bots: list[str] = []
    for f in platform.formation(app):
        (bots if "swapbot" in (f.command or "") else types).append(f.type)
    return types, bots


def _other_apps(platform: Any, app: str, own_app: str | None) -> dict[str, list[str]]:
    """Every other app attached to the app's database (swapbot's own left out: it is never
    stopped) with its process types; [] for one whose formation is out of the token's reach."""
    from swapbot.heroku import HerokuError
    from swapbot.swap.writers import attached

    _, attachments = attached(platform, app)
    others = sorted({a.app_name for a in attachments if a.app_name} - {app, own_app})
    found: dict[str, list[str]] = {}
    for name in others:
        try:
            found[name] = [f.type for f in platform.formation(name)]
        except HerokuError:
            found[name] = []
    return found


def _free_swap_id(store: Store, base: str) -> str:
    """`base`, or `base-2`, `base-3`…: an id no stored plan has."""
    candidate, n = base, 1
    while store.get_plan(candidate) is not None and n < 50:
        n += 1
        candidate = f"{base}-{n}"
    return candidate
