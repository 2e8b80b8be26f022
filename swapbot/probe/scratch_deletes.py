"""Scratch checks of deleting a mapping: what becomes of its trigger-log rows and its table, and
what a second DELETE answers. Only a mapping the probe made is deleted (scratch_mappings)."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from swapbot.heroku import Mapping
from swapbot.probe.checks import Context, Seen, confirmed, contradicted, unknown
from swapbot.probe.scratch_helpers import (
    WAITING,
    WRITER_WATCH,
    answer,
    database,
    is_settled,
    ok,
    one,
    paused,
    poll,
    said,
    settled,
    table_of,
    tables,
    until,
    wait_state,
)
from swapbot.probe.scratch_mappings import (
    WRITABLE_TYPES,
    described,
    fields_of,
    is_read_write,
    names,
    own_mapping,
    own_mappings,
)

PROBE_VALUE = "swapbot probe"


@dataclass(frozen=True)
class Deleted:
    """The mapping a check deleted, for the checks that follow (`ctx.state["deleted"]`)."""

    id: str
    object_name: str | None
    table: str
    # Whether its table was in the schema just before the delete.
    existed: bool


def _delete(ctx: Context, m: Mapping, schema: str) -> Deleted:
    """Delete the probe's mapping `m`, and note it."""
    table = table_of(m.object_name or "")
    deleted = Deleted(m.id, m.object_name, table, table in tables(ctx, schema))
    ctx.connect.delete_mapping(ctx.ref(), m.id)
    ctx.state["deleted"] = deleted
    return deleted


def delete_mapping_trigger_log(ctx: Context) -> Seen:
    m = next((m for m in own_mappings(ctx, settled(ctx)) if is_read_write(m)), None)
    if m is None:
        return unknown("not run: no read-write mapping could be made")
    field = _writable(ctx, m)
    if field is None:
        return unknown(f"the read-write mapping of {m.object_name} has no text field to write")
    schema, table = str(ctx.state["schema"]), table_of(m.object_name or "")
    with paused(ctx):
        logged = _write_row(ctx, schema, table, field.lower())
        if logged is None:
            return unknown(f"a change to {table} was not logged in {schema}._trigger_log")
        _delete(ctx, m, schema)
    wait_state(ctx, is_settled)
    window = min(ctx.wait_seconds, WRITER_WATCH)
    where = until(ctx, lambda: _processed(ctx, schema, logged), window)
    where = where or _log_state(ctx, schema, logged)
    tried = f"paused, changed a row of {table}, deleted the mapping, resumed: "
    if where[0] == "_trigger_log" and where[1] in WAITING:
        return confirmed(tried + f"the row is still {where[1]} {window:.0f} s later: orphaned")
    if not where[0]:
        return contradicted(tried + "the trigger-log row is gone from _trigger_log and its archive")
    return contradicted(tried + f"the row is {where[1]} in {where[0]}: processed")


def _writable(ctx: Context, m: Mapping) -> str | None:
    """A mapped field the probe can write a short text to: the one it chose, else any."""
    mapped = fields_of(m)
    chosen = ctx.state.get("write_field")
    if chosen in mapped:
        return str(chosen)
    found = names(described(ctx, m.object_name or "") or [], WRITABLE_TYPES)
    return next((name for name in found if name in mapped), None)


def _write_row(ctx: Context, schema: str, table: str, column: str) -> int | None:
    """Change one synced row; the id of the trigger-log row it made, None when none."""
    target = sql.Identifier(schema, table)
    with database(ctx) as db:
        row = db.execute(
            sql.SQL(
                "UPDATE {t} SET {c} = %s WHERE id = "
                "(SELECT id FROM {t} WHERE sfid IS NOT NULL ORDER BY id LIMIT 1) RETURNING id"
            ).format(t=target, c=sql.Identifier(column)),
            (PROBE_VALUE,),
        ).fetchone()
        if row is None:
            return None
        found = db.execute(
            sql.SQL(
                "SELECT id FROM {} WHERE table_name = %s AND record_id = %s ORDER BY id DESC LIMIT 1"
            ).format(sql.Identifier(schema, "_trigger_log")),
            (table, row[0]),
        ).fetchone()
    return None if found is None else int(found[0])


def _log_state(ctx: Context, schema: str, log_id: int) -> tuple[str, str]:
    """Where the trigger-log row is (`_trigger_log` or `_trigger_log_archive`) and its state;
    ("", "gone") when it is in neither."""
    for table in ("_trigger_log", "_trigger_log_archive"):
        state = one(
            ctx,
            sql.SQL("SELECT state FROM {} WHERE id = %s").format(sql.Identifier(schema, table)),
            (log_id,),
        )
        if state is not None:
            return table, str(state)
    return "", "gone"


def _processed(ctx: Context, schema: str, log_id: int) -> tuple[str, str] | None:
    """Where the row is once HC has done something with it; None while it waits."""
    where = _log_state(ctx, schema, log_id)
    return None if where[0] == "_trigger_log" and where[1] in WAITING else where


def delete_mapping_table(ctx: Context) -> Seen:
    schema = str(ctx.state["schema"])
    deleted: Deleted | None = ctx.state.get("deleted")
    if deleted is None:
        deleted = _delete(ctx, own_mapping(ctx), schema)
    table = deleted.table
    if not deleted.existed:
        return unknown(f"{table} was not in {schema} before the delete")
    dropped = until(ctx, lambda: table not in tables(ctx, schema), 3 * poll(ctx))
    tried = f"deleted the mapping of {deleted.object_name}: {schema}.{table} is "
    if dropped:
        return confirmed(tried + "dropped", "true")
    return confirmed(tried + "kept", "false")


def delete_mapping_repeat(ctx: Context) -> Seen:
    deleted: Deleted | None = ctx.state.get("deleted")
    if deleted is None:
        return unknown("not run: no mapping was deleted")
    status, message = answer(ctx, lambda: ctx.connect.delete_mapping(ctx.ref(), deleted.id))
    tried = (
        f"a second DELETE of the mapping of {deleted.object_name} answered {said(status, message)}"
    )
    if status == 404:
        return confirmed(tried, "404")
    if ok(status):
        return contradicted(tried, str(status))
    return unknown(tried)
