"""Scratch checks of imports, exports and mapping edits.

Each import runs only while every mapping of the connection is the probe's own (`no_foreign`),
and each edit touches only a mapping the probe made (`own_mapping`): see scratch_mappings.
"""

from __future__ import annotations

import functools
from typing import Any

from swapbot.heroku import HerokuError
from swapbot.heroku.connect import PUT_BODIES
from swapbot.probe.checks import Context, Seen, confirmed, contradicted, unknown
from swapbot.probe.scratch_helpers import (
    NotReady,
    NotRun,
    answer,
    connection,
    has_column,
    made_schema,
    ok,
    refused,
    said,
    schema_exists,
    settled,
    table_of,
    wait_state,
)
from swapbot.probe.scratch_mappings import (
    REQUIRED,
    TEXT_TYPES,
    an_object,
    described,
    export_doc,
    extra_field,
    fields_of,
    first_entry,
    import_doc,
    mapping_config,
    mapping_in,
    names,
    no_foreign,
    own_mapping,
    raw_export,
)


def import_status_code(ctx: Context) -> Seen:
    no_foreign(ctx)
    obj = an_object(ctx)
    entry, fields = first_entry(ctx, obj)
    ctx.state.update(first=obj, first_fields=fields)
    seen: list[str] = []
    status, message, _ = import_doc(ctx, export_doc(ctx, [entry]), seen)
    if refused(status):
        return contradicted(f"importing a one-mapping file was refused: {said(status, message)}")
    if not ok(status):
        return unknown(f"import answered {said(status, message)}")
    c = wait_state(ctx, lambda c: c.state == "IDLE" and c.mapping(obj) is not None, seen=seen)
    listed = mapping_in(c, obj) is not None
    states = " → ".join(seen) or "none seen"
    through = "" if "IMPORT_CONFIGURATION" in seen else " (IMPORT_CONFIGURATION not seen)"
    observed = f"answered {status}; states: {states}{through}; {obj} {'listed' if listed else 'not listed'}"
    if c is None or not listed:
        return contradicted(observed, str(status))
    return confirmed(observed, str(status))


def import_accepts_added_fields(ctx: Context) -> Seen:
    no_foreign(ctx)
    obj, first_fields = _first(ctx)
    mapped = fields_of(settled(ctx).mapping(obj))
    extra = extra_field(ctx, obj, mapped | set(first_fields))
    if extra is None:
        return unknown(f"{obj} has no field left to add")
    doc = export_doc(ctx, [{"object_name": obj, "config": mapping_config([*first_fields, extra])}])
    status, message, c = import_doc(ctx, doc)
    if not ok(status):
        return unknown(f"the import was refused: {said(status, message)}")
    if extra not in fields_of(mapping_in(c, obj)):
        return contradicted(f"imported {obj} with {extra} added: config.fields lacks it", "false")
    settled(ctx)
    schema, table, column = ctx.state["schema"], table_of(obj), extra.lower()
    if has_column(ctx, schema, table, column):
        return confirmed(
            f"imported {obj} with {extra} added: config.fields has it, and {table}.{column} "
            "is there after the load",
            "true",
        )
    # "false" too: the engine cannot add a field by import alone (it reads the variant).
    return contradicted(
        f"imported {obj} with {extra} added: config.fields has it, but {table} has no column "
        f"{column} after the load",
        "false",
    )


def _first(ctx: Context) -> tuple[str, list[str]]:
    if "first" not in ctx.state:
        raise NotReady("no mapping was imported (import-status-code did not run)")
    return str(ctx.state["first"]), list(ctx.state["first_fields"])


def import_leaves_other_mappings(ctx: Context) -> Seen:
    no_foreign(ctx)
    first, _ = _first(ctx)
    if settled(ctx).mapping(first) is None:
        return unknown(f"{first} is not mapped: nothing to leave alone")
    second = an_object(ctx, not_=(first,))
    entry = _read_write_entry(ctx, second)
    status, message, c = import_doc(ctx, export_doc(ctx, [entry]))
    if not ok(status):
        return unknown(f"the import was refused: {said(status, message)}")
    c = wait_state(ctx, lambda c: c.mapping(second) is not None)
    if c is None:
        return unknown(f"the import of {second} made no mapping")
    if c.mapping(first) is not None:
        return confirmed(f"imported a file with {second} only: {first} is still mapped", "true")
    return contradicted(f"imported a file with {second} only: {first} is gone", "false")


def _read_write_entry(ctx: Context, object_name: str) -> dict[str, Any]:
    """A read-write mapping of `object_name` with a text field to write (no upsert field: HC
    does not need one to write back, and the probe only changes rows it loaded)."""
    fields = described(ctx, object_name) or []
    text = names(fields, TEXT_TYPES)
    chosen = [*(f for f in REQUIRED if any(d["name"] == f for d in fields)), *text[:1]]
    ctx.state["write_field"] = text[0] if text else None
    return {"object_name": object_name, "config": mapping_config(chosen, access="read_write")}


def import_write_algorithm(ctx: Context) -> Seen:
    no_foreign(ctx)
    features = dict(settled(ctx).features)
    current = features.get("poll_db_no_merge")
    if not isinstance(current, bool):
        return unknown("the connection's features have no poll_db_no_merge")
    doc = export_doc(ctx)
    doc["connection"]["features"] = {**features, "poll_db_no_merge": not current}
    status, message, c = import_doc(ctx, doc)
    if not ok(status) or c is None:
        return unknown(f"the import was refused or did not end: {said(status, message)}")
    after = c.features.get("poll_db_no_merge")
    copied = after == (not current)
    if copied and ctx.state.get("given"):
        # An add-on given to the probe gets its own features back.
        doc["connection"]["features"] = features
        import_doc(ctx, doc)
    return confirmed(
        f"poll_db_no_merge was {current}; imported a file with {not current}; it is now {after}",
        "true" if copied else "false",
    )


def export_applied_at(ctx: Context) -> Seen:
    no_foreign(ctx)
    settled(ctx)
    exported = raw_export(ctx)
    configs = [e.get("config") or {} for e in exported.get("mappings") or []]
    if not configs:
        return unknown("the export has no mapping")
    carried = sum(1 for config in configs if "applied_at" in config)
    if not carried:
        return unknown("the export carries no applied_at")
    status, message, _ = import_doc(ctx, exported)
    tried = f"imported the export unchanged ({carried} mapping(s) with applied_at): "
    if ok(status):
        return confirmed(tried + f"accepted ({status})", "false")
    if refused(status):
        return contradicted(tried + f"refused ({said(status, message)})", "true")
    return unknown(tried + said(status, message))


def import_connection_block(ctx: Context) -> Seen:
    no_foreign(ctx)
    c = settled(ctx)
    schema, db_key = c.schema_name or "", c.db_key or ""
    other = f"{schema}_moved"[:63]
    if schema_exists(ctx, other):
        raise NotRun(f"schema {other} is there already, and it is not the probe's")
    made_schema(ctx, other)  # dropped at the end if HC made it
    doc = export_doc(ctx)
    doc["connection"]["name"] = f"{ctx.app}:{db_key}:{other}"
    status, message, after = import_doc(ctx, doc)
    if not ok(status) or after is None:
        return unknown(f"the import was refused or did not end: {said(status, message)}")
    tried = f"imported a file whose connection.name names schema {other}: "
    if after.schema_name == schema:
        return confirmed(tried + f"schema_name is still {schema}", "false")
    try:
        ctx.connect.configure(ctx.ref(), db_key=db_key, schema_name=schema)
        back = connection(ctx).schema_name
        note = "moved back" if back == schema else f"PATCH left it on {back}"
    except HerokuError as exc:
        back, note = after.schema_name, f"could not move it back ({exc})"
    ctx.state["schema"] = back or schema
    return contradicted(tried + f"schema_name became {after.schema_name}; {note}", "true")


def put_mapping_body(ctx: Context) -> Seen:
    """PUT one more field on a mapping of the probe's own, in each body shape until one is
    taken."""
    ref, m = ctx.ref(), own_mapping(ctx)
    obj = m.object_name or ""
    current = ctx.connect.get_mapping(ref, m.id).config
    if current is None or current.revision is None:
        return unknown(f"the mapping of {obj} has no config.revision")
    extra = extra_field(ctx, obj, set(current.fields))
    if extra is None:
        return unknown(f"{obj} has no field left to add")
    config = current.model_copy(deep=True)
    config.fields = {**current.fields, extra: {}}
    tried = []
    for body in PUT_BODIES:
        put = functools.partial(ctx.connect.update_mapping, ref, m.id, obj, config, body=body)
        status, message = answer(ctx, put)
        tried.append(f"{body}: {said(status, message)}")
        if ok(status):
            return _put_result(ctx, m.id, body, extra, current.revision, "; ".join(tried))
        if status not in (400, 422):
            break
    return contradicted("PUT /mappings/{id} refused: " + "; ".join(tried))


def _put_result(
    ctx: Context, mapping_id: str, body: str, extra: str, revision: int, tried: str
) -> Seen:
    after = ctx.connect.get_mapping(ctx.ref(), mapping_id).config
    has = after is not None and extra in after.fields
    now = after.revision if after is not None else None
    observed = (
        f"{tried}; config.fields {'has' if has else 'lacks'} {extra}; revision {revision} → {now}"
    )
    if not has or now is None or now <= revision:
        return contradicted(observed)
    if body == "create-plus-revision":
        return confirmed(observed, body)
    return contradicted(observed, body)
