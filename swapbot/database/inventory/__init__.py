"""Inventory: every object a swap must carry from OLD to NEW, found through the catalogs.

Starting from the changed tables (and their row types), `pg_depend` is followed level by level
through views, materialized views and functions, in any schema, so a view on a view on a table
is found as well as the foreign key from `public.app_order`. Objects `pg_depend` cannot see are
read from where they live: grants from ACLs, comments from `pg_description`, table options from
`pg_class`, and function bodies resolved at run time from `pg_proc.prosrc` (read with
PostgreSQL's own lexer, see `retarget`).

Every definition is read with `search_path = pg_catalog`, so every reference in it is qualified,
then parsed once and re-targeted (`retarget.rewrite`) with the renames the classification builds
as it goes: the changed tables, then each object copied into NEW, in dependency order. Whether
an object must be carried is decided by that rewrite: it is carried iff its definition changes.

Each object gets a phase (`prep`, `cutover`, `manual`, or `none` when nothing needs doing) and
an action (`copy`, `attach`, `replace`, `recreate`, `refresh`, `follow`, `review`), with the
reason; docs/database.md explains why each kind lands where it does. Heroku Connect's own
objects are listed apart as `managed`.

The same scan run from NEW (`scan(conn, NEW, tables, OLD)`) finds what prep and cutover made,
which is how `ddl --phase rollback` and `verify` work from the live catalog alone.

Modules, one concern each: `model` (what is reported), `catalog` (the snapshot and every
query), `scanner` (the pass and its shared classification), `tables`, `closure`, `nodes`,
`attached`, `acls`, `schema`, `bodies` and `managed`.
"""

from __future__ import annotations

import psycopg

from swapbot.database import retarget
from swapbot.database._common import (
    UserError,
    check_identifier,
    parse_tables,
    require_mapped_tables,
)
from swapbot.database.inventory.catalog import catalog_snapshot, fetch
from swapbot.database.inventory.managed import HC_SCHEMA_FUNCTIONS, SYSTEM_TABLES
from swapbot.database.inventory.model import REASONS, Action, DbObject, Inventory, Kind, Phase
from swapbot.database.inventory.scanner import scan

__all__ = [
    "HC_SCHEMA_FUNCTIONS", "REASONS", "SYSTEM_TABLES", "Action", "DbObject", "Inventory", "Kind",
    "Phase", "add_command", "catalog_snapshot", "fetch", "inventory", "render", "scan",
]  # fmt: skip

_PLACEHOLDER = "swapbot_new_schema"


def inventory(
    conn: psycopg.Connection,
    schema: str,
    tables: list[str],
    new_schema: str | None = None,
    *,
    definitions: bool = True,
) -> Inventory:
    """Every object the swap must carry from `schema` for `tables`, classified by phase.

    With `new_schema`, each carried object also gets its re-targeted definition, unless
    `definitions` is false (printing them is most of the work; the text report shows none).
    """
    check_identifier(schema, "schema")
    tables = parse_tables(tables)
    if new_schema is not None:
        check_identifier(new_schema, "new schema")
        if new_schema == schema:
            raise UserError("the new schema must differ from the old one")
    require_mapped_tables(conn, schema, tables)
    objects, managed, _ = scan(conn, schema, tables, new_schema or _PLACEHOLDER, managed=True)
    for obj in objects:
        if new_schema is None:
            # Nothing is re-targeted for show without NEW: name it generically.
            obj.target = obj.target and obj.target.replace(_PLACEHOLDER, "NEW")
            obj.definition = obj.definition.replace(_PLACEHOLDER, "NEW")
            obj.reason = obj.reason.replace(_PLACEHOLDER, "NEW")
            obj.flags = [f.replace(_PLACEHOLDER, "NEW") for f in obj.flags]
        elif definitions and obj.phase in ("prep", "cutover") and (tree := obj._tree) is not None:
            obj.target_definition = retarget.deparse(tree)
    return Inventory(
        schema_=schema, new_schema=new_schema, tables=tables, objects=objects, managed=managed
    )


# --- command line ------------------------------------------------------------------------------


def render(inv: Inventory) -> str:
    lines = [
        f"Inventory of {inv.schema_} for {', '.join(inv.tables)}:"
        f" {len(inv.objects)} objects to consider, {len(inv.managed)} managed by Heroku Connect"
    ]
    for phase, title in (
        ("prep", "Created in NEW during prep"),
        ("cutover", "Created or re-pointed during the cutover"),
        ("manual", "For a person to handle"),
        ("none", "Nothing to do (listed so nothing is missed)"),
    ):
        items = inv.phase(phase)
        lines.append(f"\n{title} ({len(items)}):")
        for o in items:
            lines.append(
                f"  - [{o.action}] {o.identity}"
                + (f" -> {o.target}" if o.target and inv.new_schema else "")
            )
            lines.append(f"      {o.reason}")
            for flag in o.flags:
                lines.append(f"      ! {flag}")
    lines.append(f"\nManaged by Heroku Connect ({len(inv.managed)}), not carried:")
    for o in inv.managed:
        lines.append(f"  - {o.identity}")
    return "\n".join(lines)
