"""What the scratch probe maps and imports, and which mappings are its own.

The probe changes only mappings it made itself. On an add-on given to it (`--addon`), the
objects mapped before it began are another's (`ctx.state["mapped_before"]`): no check edits,
reloads or deletes them, and no check imports a file while they are there, since an import may
replace the mappings its file does not name (the very question of import-leaves-other-mappings)
or move the connection. A check that would have to is not run (`NotRun`).
"""

from __future__ import annotations

from typing import Any

from swapbot.heroku import Connection, HerokuApiError, Mapping
from swapbot.probe.checks import Context
from swapbot.probe.scratch_helpers import (
    NotReady,
    NotRun,
    answer,
    is_settled,
    ok,
    poll,
    refused,
    said,
    settled,
    wait_state,
)

# The objects the probe maps, the first ones the org has (every org has Account and Contact).
OBJECTS = ("Account", "Contact", "Opportunity", "Case", "Lead")
# The fields every mapping the probe makes starts with (Salesforce system fields).
REQUIRED = ("Id", "IsDeleted", "SystemModstamp")
# Field types safe to add to a mapping, and those a row can be written with.
SIMPLE_TYPES = frozenset(
    {"string", "textarea", "picklist", "email", "phone", "url", "double", "currency", "int",
     "percent", "boolean", "date", "datetime"}
)  # fmt: skip
TEXT_TYPES = frozenset({"string", "textarea"})
# Types HC keeps in a character column: a row can be written with a short text.
WRITABLE_TYPES = TEXT_TYPES | {"picklist", "email", "phone", "url"}


# --- whose mappings ------------------------------------------------------------------------------


def foreign(ctx: Context) -> set[str]:
    """The objects mapped before the probe began (on an add-on given to it)."""
    return set(ctx.state.get("mapped_before") or ())


def own_mappings(ctx: Context, c: Connection) -> list[Mapping]:
    """The mappings of `c` the probe made."""
    before = foreign(ctx)
    return [m for m in c.mappings if (m.object_name or m.id) not in before]


def no_foreign(ctx: Context) -> None:
    """NotRun while the connection has mappings the probe did not make: an import could change
    or remove them."""
    before = foreign(ctx)
    if before:
        raise NotRun(
            f"{ctx.addon} has mappings the probe did not make ({', '.join(sorted(before))}), "
            "which an import could change or remove"
        )


def is_read_write(m: Mapping) -> bool:
    return m.config is not None and m.config.access == "read_write"


def own_mapping(ctx: Context) -> Mapping:
    """A mapping the probe made, a read-only one first (the read-write one is for the
    trigger-log check); one imported for the purpose when it has none. NotRun when it cannot."""
    mine = own_mappings(ctx, settled(ctx))
    if not mine:
        mine = own_mappings(ctx, _import_own(ctx))
    return sorted(mine, key=is_read_write)[0]


def _import_own(ctx: Context) -> Connection:
    no_foreign(ctx)
    obj = an_object(ctx)
    entry, _ = first_entry(ctx, obj)
    status, message, _ = import_doc(ctx, export_doc(ctx, [entry]))
    if not ok(status):
        raise NotRun(
            f"the probe has no mapping of its own, and could not import one: {said(status, message)}"
        )
    c = wait_state(ctx, lambda c: is_settled(c) and c.mapping(obj) is not None)
    if c is None:
        raise NotRun(f"the probe has no mapping of its own, and the {obj} it imported did not load")
    return c


# --- what the org has ----------------------------------------------------------------------------


def described(ctx: Context, object_name: str) -> list[dict[str, Any]] | None:
    """The object's fields as the connection describes them; None when it cannot."""
    cache: dict[str, list[dict[str, Any]] | None] = ctx.state.setdefault("described", {})
    if object_name not in cache:
        try:
            found = ctx.connect.describe(ctx.ref(), object_name)
        except HerokuApiError as exc:
            if not refused(exc.status):
                raise
            found = {}
        fields = found.get("fields")
        cache[object_name] = (
            [f for f in fields if isinstance(f, dict) and isinstance(f.get("name"), str)]
            if isinstance(fields, list) and fields
            else None
        )
    return cache[object_name]


def an_object(ctx: Context, *, not_: tuple[str, ...] = ()) -> str:
    """The first of OBJECTS the connection can describe, not in `not_` nor mapped by another."""
    taken = set(not_) | foreign(ctx)
    for name in OBJECTS:
        if name not in taken and described(ctx, name):
            return name
    raise NotReady(f"the connection can describe none of {', '.join(OBJECTS)}")


def names(fields: list[dict[str, Any]], types: frozenset[str]) -> list[str]:
    """Fields of these types that can be mapped and written (not HC's own, not calculated)."""
    return [
        str(f["name"])
        for f in fields
        if f.get("type") in types
        and f["name"] not in REQUIRED
        and f.get("updateable", True) is not False
        and not f.get("calculated")
    ]


def extra_field(ctx: Context, object_name: str, taken: set[str]) -> str | None:
    """The last described field of a simple type that is not in `taken`."""
    found = [n for n in names(described(ctx, object_name) or [], SIMPLE_TYPES) if n not in taken]
    return found[-1] if found else None


def mapping_config(fields: list[str], *, access: str = "read_only") -> dict[str, Any]:
    """A mapping's config as an export carries it."""
    return {
        "access": access,
        "sf_notify_enabled": False,
        "sf_polling_seconds": 600,
        "sf_max_daily_api_calls": 30000,
        "fields": {name: {} for name in fields},
        "indexes": {"Id": {"unique": True}, "SystemModstamp": {"unique": False}},
    }


def first_entry(ctx: Context, object_name: str) -> tuple[dict[str, Any], list[str]]:
    """A read-only mapping of `object_name` with the system fields and Name (if it has them),
    as an import file carries it; and those fields."""
    known = {str(f["name"]) for f in described(ctx, object_name) or []}
    fields = [f for f in (*REQUIRED, "Name") if f in known]
    return {"object_name": object_name, "config": mapping_config(fields)}, fields


# --- export and import ---------------------------------------------------------------------------


def raw_export(ctx: Context) -> dict[str, Any]:
    """The connection's export exactly as HC sends it."""
    ref = ctx.ref()
    found = ctx.hc_json(f"{ref.api_root}/connections/{ref.id}/actions/export")
    if not isinstance(found, dict):
        raise NotReady("the export is not a JSON object")
    return found


def export_doc(ctx: Context, mappings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A file to import: the connection's export, its mappings (or `mappings`) without
    applied_at and revision (export-applied-at is its own check)."""
    doc = raw_export(ctx)
    doc["connection"] = dict(doc.get("connection") or {})
    if mappings is None:
        mappings = []
        for entry in doc.get("mappings") or []:
            config = {
                k: v
                for k, v in (entry.get("config") or {}).items()
                if k not in ("applied_at", "revision")
            }
            mappings.append({**entry, "config": config})
    # The mappings first: the evidence keeps the start of a request.
    return {"version": doc.get("version", 1), "mappings": mappings, "connection": doc["connection"]}


def import_doc(
    ctx: Context, doc: dict[str, Any], seen: list[str] | None = None
) -> tuple[int | None, str, Connection | None]:
    """Import `doc`: the status, the error message, and the connection once the import is done,
    its state no longer IMPORT_CONFIGURATION (None if it was refused, or did not end in time).
    The states met go to `seen`."""
    seen = [] if seen is None else seen
    status, message = answer(ctx, lambda: ctx.connect.import_config(ctx.ref(), doc))
    if not ok(status):
        return status, message, None
    wait_state(ctx, lambda c: True, seen=seen)  # the state right after the answer
    ctx.sleep(poll(ctx))  # in case HC takes a moment to show IMPORT_CONFIGURATION
    done = wait_state(ctx, lambda c: c.state != "IMPORT_CONFIGURATION", seen=seen)
    return status, message, done


def mapping_in(c: Connection | None, object_name: str) -> Mapping | None:
    return None if c is None else c.mapping(object_name)


def fields_of(m: Mapping | None) -> set[str]:
    return set(m.config.fields) if m is not None and m.config is not None else set()
