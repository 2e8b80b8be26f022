"""Making the scratch connection ready, and removing what the probe made.

`require_scratch` refuses an app not marked as scratch (`NotScratch`). `prepare` makes a demo
add-on (or takes the one given), configures it on a schema of the probe's own, and has a person
authorize it; whatever goes wrong there is a `SetupFailed`. `clean_up` then removes the add-on
the probe made, or tidies the one it was given, and drops the schemas the probe created: only
those that were not there before it (`ctx.state["schemas"]`).

The authorize link carries the OAuth state: it goes to the person (the callback, else stdout),
never into an error, a finding or `ctx.state`.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import psycopg

from swapbot.heroku import (
    ConnectionNotFound,
    ConnectionRef,
    Forbidden,
    HerokuError,
    NotFound,
)
from swapbot.probe.checks import Context, Seen, confirmed, unknown
from swapbot.probe.scratch_helpers import (
    DatabaseProblem,
    connection,
    drop_schema,
    is_settled,
    keep,
    made_schema,
    poll,
    schema_exists,
    until,
    wait_state,
)
from swapbot.probe.scratch_mappings import own_mappings

logger = logging.getLogger("swapbot.probe")

SCRATCH_MARK = "SWAPBOT_SCRATCH"
DEMO_PLAN = "herokuconnect:demo"
# Where Salesforce sends the person once they have logged in: the scratch app on Heroku.
DASHBOARD = "https://dashboard.heroku.com/apps/{app}/resources"
AUTHORIZE_PROMPT = "Open this link to authorize the scratch connection in Salesforce: {url}"
HIDDEN_LINK = "(the authorize link)"


class NotScratch(Exception):
    """The app is not marked as scratch (or the add-on given is not one of its own)."""


class SetupFailed(Exception):
    """The scratch connection could not be made ready; what the probe made is removed."""


def new_suffix() -> str:
    """The suffix of the add-on and schema the probe makes."""
    return secrets.token_hex(3)


# --- is it scratch -------------------------------------------------------------------------------


def require_scratch(ctx: Context, forced: bool) -> None:
    if _scratch_mark(ctx) == "true":
        return
    if not forced:
        raise NotScratch(
            f"{ctx.app} is not marked as a scratch app, and the scratch checks change things "
            f"(they create and remove a Heroku Connect add-on, import and delete mappings, pause "
            f"the connection). Mark it with `heroku config:set {SCRATCH_MARK}=true -a {ctx.app}`, "
            f"or pass --i-know-this-is-scratch."
        )
    try:
        ctx.platform.update_config_vars(ctx.app, {SCRATCH_MARK: "true"})
    except HerokuError as exc:
        raise SetupFailed(f"could not mark {ctx.app} as scratch: {exc}") from exc


def _scratch_mark(ctx: Context) -> str | None:
    try:
        mark = ctx.platform.config_vars(ctx.app).get(SCRATCH_MARK)
    except NotFound:
        raise NotScratch(f"no app {ctx.app} visible to this token") from None
    except Forbidden as exc:
        raise NotScratch(f"this token may not read the config vars of {ctx.app} ({exc})") from None
    except HerokuError as exc:
        raise SetupFailed(f"could not read the config vars of {ctx.app}: {exc}") from exc
    return None if mark is None else mark.get_secret_value().strip().lower()


# --- setup ---------------------------------------------------------------------------------------


def prepare(ctx: Context, authorize: Callable[[str], object] | None) -> None:
    """Make the scratch connection ready. NotScratch for an add-on given that is not the app's
    Heroku Connect one; any other failure is a SetupFailed."""
    try:
        _setup(ctx, authorize)
    except (NotScratch, SetupFailed):
        raise
    except psycopg.Error as exc:
        # Not its message: it may name the database's host and user.
        raise SetupFailed(
            f"could not prepare the scratch connection: database error ({type(exc).__name__})"
        ) from None
    except Exception as exc:
        raise SetupFailed(f"could not prepare the scratch connection: {exc}") from exc


def _setup(ctx: Context, authorize: Callable[[str], object] | None) -> None:
    if ctx.addon is None:
        _make_addon(ctx)
    else:
        _use_addon(ctx)
    c = connection(ctx)
    if c.state == "NEW":
        _configure(ctx)
    else:
        ctx.state.update(schema=c.schema_name, db_key=c.db_key)
        _open_database(ctx, c.db_key or "DATABASE_URL")
    _authorize(ctx, authorize)


def _make_addon(ctx: Context) -> None:
    suffix = new_suffix()
    name = f"swapbot-probe-{suffix}"
    # Remembered before asking: a create whose answer is lost may still have made it.
    ctx.state.update(suffix=suffix, made=name)
    ctx.addon = name
    ctx.platform.create_addon(ctx.app, plan=DEMO_PLAN, name=name)
    if not until(ctx, lambda: ctx.platform.get_addon(ctx.app, name).state == "provisioned"):
        raise SetupFailed(f"add-on {name} was not provisioned in {ctx.wait_seconds:.0f} s")
    ctx.use_ref(_find(ctx))


def _use_addon(ctx: Context) -> None:
    name = ctx.addon or ""
    try:
        addon = ctx.platform.get_addon(ctx.app, name)
    except NotFound:
        raise NotScratch(f"{name} is not an add-on of {ctx.app}") from None
    if addon.service_name not in (None, "herokuconnect"):
        raise NotScratch(f"{name} is not a Heroku Connect add-on ({addon.service_name})")
    ctx.use_ref(_find(ctx))
    # Another's mappings: no check changes them (scratch_mappings).
    before = {m.object_name or m.id for m in connection(ctx).mappings}
    ctx.state.update(given=name, mapped_before=before)


def _find(ctx: Context) -> ConnectionRef:
    def found() -> ConnectionRef | None:
        try:
            return ctx.connect.find_connection(ctx.app, ctx.addon)
        except ConnectionNotFound:
            return None

    ref: ConnectionRef | None = until(ctx, found)
    if ref is None:
        raise SetupFailed(f"Heroku Connect lists no connection for {ctx.addon}")
    return ref


def _open_database(ctx: Context, db_key: str) -> None:
    value = ctx.platform.config_vars(ctx.app).get(db_key)
    if value is None:
        raise SetupFailed(f"{ctx.app} has no config var {db_key}")
    ctx.database_url = value.get_secret_value()


def _configure(ctx: Context) -> None:
    """Choose the database and a schema of the probe's own; look for the schema before and
    after (the finding of configure-creates-schema, kept for its check). A schema that was
    there before is not the probe's: it is not dropped at the end."""
    ref = ctx.ref()
    keys = ctx.connect.app_db_keys(ref, ctx.app)
    if not keys:
        raise SetupFailed(f"Heroku Connect lists no database of {ctx.app}: attach one first")
    db_key = "DATABASE_URL" if "DATABASE_URL" in keys else keys[0]
    schema = f"swapbot_probe_{ctx.state.get('suffix') or new_suffix()}"
    ctx.state.update(db_key=db_key, schema=schema)
    _open_database(ctx, db_key)
    mark = ctx.recorder.mark()
    before = schema_exists(ctx, schema)
    if not before:
        made_schema(ctx, schema)
    ctx.connect.configure(ref, db_key=db_key, schema_name=schema)
    # A moment's grace, in case HC creates it just after answering.
    after = until(ctx, lambda: schema_exists(ctx, schema), 3 * poll(ctx))
    keep(ctx, "configure-creates-schema", _configured(schema, before, after), mark)


def _configured(schema: str, before: bool, after: bool) -> Seen:
    if before:
        return unknown(f"schema {schema} was there before configure")
    if after:
        return confirmed(f"schema {schema} was there right after configure", "true")
    return confirmed(f"schema {schema} was not there after configure (HC makes it later)", "false")


def _authorize(ctx: Context, authorize: Callable[[str], object] | None) -> None:
    """Ask for two links (restart-and-authorize-url-repeatable), then have the person open the
    last one, unless the connection is authorized already (an add-on given to the probe)."""
    ref = ctx.ref()
    needed = connection(ctx).state == "NEED_AUTHENTICATION"
    mark = ctx.recorder.mark()
    next_url = DASHBOARD.format(app=ctx.app)
    links = [ctx.connect.authorize_url(ref, environment="production", next_url=next_url)]
    links.append(ctx.connect.authorize_url(ref, environment="production", next_url=next_url))
    # Whether they differ, never the links themselves.
    ctx.state["links_differ"] = links[0] != links[1]
    keep(ctx, "restart-and-authorize-url-repeatable", None, mark)
    if not needed:
        return
    _hand_over(links[-1], authorize)
    left = wait_state(ctx, lambda c: c.state != "NEED_AUTHENTICATION", ctx.wait_seconds * 5)
    if left is None:
        raise SetupFailed(f"the connection was not authorized in {ctx.wait_seconds * 5:.0f} s")
    if wait_state(ctx, is_settled) is None:
        raise SetupFailed("the connection did not become IDLE after it was authorized")


def _hand_over(link: str, authorize: Callable[[str], object] | None) -> None:
    """Give the person the link: `authorize(link)`, else print it. An error of `authorize` is
    told without the link (nor its OAuth state)."""
    if authorize is None:
        print(AUTHORIZE_PROMPT.format(url=link), flush=True)
        return
    try:
        authorize(link)
    except Exception as exc:
        text = _without_link(f"{type(exc).__name__}: {exc}", link)
        raise SetupFailed(f"the authorize step failed ({text})") from None


def _without_link(text: str, link: str) -> str:
    text = text.replace(link, HIDDEN_LINK)
    for key, value in parse_qsl(urlsplit(link).query):
        if key == "state" and value:
            text = text.replace(value, "(state)")
    return text


# --- clean-up ------------------------------------------------------------------------------------


def clean_up(ctx: Context) -> None:
    """Remove the add-on the probe made and drop the schemas it created; with an add-on given,
    resume it and delete the mappings the probe added. Failures are told, not raised."""
    made = ctx.state.get("made")
    if made:
        try:
            ctx.platform.delete_addon(ctx.app, made)
            ctx.state["removed"] = made
        except NotFound:
            ctx.state["removed"] = made
        except HerokuError as exc:
            _warn(
                f"could not remove add-on {made} ({exc}): `heroku addons:destroy {made} -a {ctx.app}`"
            )
            return  # its schema stays while the add-on uses it
    kept = _tidy_given(ctx) if ctx.state.get("given") else set()
    for schema in ctx.state.get("schemas") or []:
        if schema in kept or not ctx.database_url:
            continue
        try:
            drop_schema(ctx, schema)
        except DatabaseProblem as exc:
            _warn(f"could not drop schema {schema} ({exc}): drop it by hand")


def _tidy_given(ctx: Context) -> set[str]:
    """An add-on given to the probe stays: running, without the mappings the probe added. The
    schema it uses is kept."""
    try:
        c = connection(ctx)
        if c.state == "PAUSED":
            ctx.connect.resume(ctx.ref())
        for m in own_mappings(ctx, c):
            ctx.connect.delete_mapping(ctx.ref(), m.id)
        return {c.schema_name} if c.schema_name else set()
    except (HerokuError, ValueError) as exc:
        _warn(f"could not tidy up {ctx.addon} ({exc})")
        return set(ctx.state.get("schemas") or [])


def _warn(text: str) -> None:
    logger.warning("probe clean-up: %s", text)
    print(f"probe clean-up: {text}", file=sys.stderr, flush=True)
