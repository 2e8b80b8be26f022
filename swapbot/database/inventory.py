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
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import psycopg
from pglast import ast
from pglast.parser import ParseError
from psycopg.pq import TransactionStatus
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from swapbot.database import retarget
from swapbot.database._common import (
    UserError,
    check_identifier,
    connect,
    emit,
    parse_tables,
    require_mapped_tables,
)
from swapbot.database._session import add_connection_arguments
from swapbot.database.hc_layout import log_trigger_name, status_trigger_name
from swapbot.database.retarget import Name, Renames, literal, qname, quote, role

Phase = Literal["prep", "cutover", "manual", "none", "managed"]
Action = Literal[
    "copy", "attach", "replace", "recreate", "refresh", "follow", "review", "managed"
]  # fmt: skip

SYSTEM_TABLES = ("_hcmeta", "_trigger_log", "_trigger_log_archive", "_sf_event_log")
HC_SCHEMA_FUNCTIONS = ("tlog_notify_trigger", "hc_capture_insert_from_row", "hc_capture_update_from_row")  # fmt: skip
_HC_TABLE_FUNCTION = re.compile(r"^hc_(.+)_(logger|status)$")

# Why each (kind, action) lands in its phase. docs/database.md says the same at length.
# fmt: off
REASONS: dict[tuple[str, str], str] = {
    ("index", "attach"):
        "built on the new table before the outage; hc2's sync keeps it current",
    ("constraint", "attach"):
        "added to the new table in prep, so a row that violates it shows up before the outage",
    ("default", "attach"):
        "column default: only applies to inserts that omit the column",
    ("not_null", "attach"):
        "checked against the loaded rows in prep, before the outage",
    ("statistics", "copy"):
        "planner statistics object, created in NEW for the new table",
    ("policy", "attach"):
        "row-level security on the new table, in place before anyone reads it",
    ("table_option", "attach"):
        "table setting carried to the new table",
    ("grant", "attach"):
        "privilege carried to the new table, so the role keeps it after the switch",
    ("schema_grant", "attach"):
        "roles that reach OLD must reach NEW, or names silently resolve to OLD",
    ("default_privileges", "attach"):
        "default privileges carried to NEW for tables hc2 creates later",
    ("comment", "attach"):
        "comment carried to the new table",
    ("view", "copy"):
        "copied into NEW under the same name: unqualified names find NEW first after the switch",
    ("materialized_view", "copy"):
        "copied into NEW (filled from the new table); refreshed again in the cutover",
    ("function", "copy"):
        "copied into NEW under the same name: its definition is bound to OLD's table",
    ("trigger", "attach"):
        "fires on writes: on NEW before the cutover it would also fire on hc2's sync writes",
    ("rule", "attach"):
        "rewrites writes: on NEW before the cutover it would also act on hc2's sync writes",
    ("foreign_key", "attach"):
        "added once both sides are loaded and paused; during the load it would reject hc2's"
        " writes",
    ("foreign_key", "replace"):
        "bound to the old table by OID: re-pointed at the new table in the cutover",
    ("view", "replace"):
        "outside OLD and bound to the old table by OID: replaced in place to read NEW",
    ("materialized_view", "recreate"):
        "outside OLD and bound by OID; a materialized view cannot be replaced, so it is dropped"
        " and created again",
    ("function", "replace"):
        "bound to the old table (by OID or by its own text): replaced in place in the cutover",
    ("rule", "replace"):
        "its action reads the old table by OID: replaced in place",
    ("policy", "replace"):
        "its expression reads the old table by OID: replaced in place",
    ("constraint", "replace"):
        "its expression is bound to the old table by OID: replaced in place",
    ("publication", "attach"):
        "the new table joins the publication when the app's writes move to it",
    ("materialized_view", "refresh"):
        "the copy was filled in prep: refreshed while writes are stopped",
}
# fmt: on


class DbObject(BaseModel):
    """One object found in the catalog, with what the swap does with it.

    `kind`: index, constraint, foreign_key, default, not_null, trigger, rule, policy,
    table_option, statistics, grant, schema_grant, default_privileges, comment, publication,
    view, materialized_view, function, other (and, for `managed`, table, system_table).
    `identity` names it uniquely and readably; `depends_on` lists the identities of the tables
    and closure objects it is bound to; `depth` orders creation.
    """

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    kind: str
    schema_: str = Field(alias="schema")
    name: str
    table: str | None = None  # the relation it belongs to, qualified
    oid: int | None = None
    identity: str
    definition: str
    phase: Phase = "none"
    action: Action = "follow"
    reason: str = ""
    flags: list[str] = Field(default_factory=list)
    depends_on: list[str] = Field(default_factory=list)
    columns: list[str] = Field(default_factory=list)  # "table.column" of changed tables it needs
    target: str | None = None  # where it goes: the NEW object, or "in place"
    target_definition: str | None = None  # the re-targeted definition (when NEW is known)
    depth: int = 1  # creation order: an object comes after everything it depends on

    _tree: Any = PrivateAttr(default=None)
    _detail: dict = PrivateAttr(default_factory=dict)
    _key: tuple = PrivateAttr(default=())
    _node: tuple | None = PrivateAttr(default=None)


class Inventory(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    schema_: str = Field(alias="schema")
    new_schema: str | None = None
    tables: list[str]
    objects: list[DbObject]
    managed: list[DbObject]

    def phase(self, phase: str) -> list[DbObject]:
        return [o for o in self.objects if o.phase == phase]


# --- catalog access ----------------------------------------------------------------------------


@contextmanager
def catalog_snapshot(conn: psycopg.Connection) -> Iterator[None]:
    """Read the catalog in one snapshot with `search_path = pg_catalog`.

    Inside a transaction the caller holds, the setting is local to it and put back afterwards.
    """
    own = conn.info.transaction_status == TransactionStatus.IDLE
    with conn.transaction():
        if own:
            # Reading a view's or rule's definition locks the relations it names: never
            # queue behind someone's DDL for long.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute("SELECT pg_catalog.set_config('lock_timeout', '5s', true)")
        previous = conn.execute(
            "SELECT pg_catalog.current_setting('search_path'),"
            " pg_catalog.set_config('search_path', 'pg_catalog', true)"
        ).fetchone()[0]
        yield
        if not own:
            conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (previous,))


def fetch(conn: psycopg.Connection, query: str, params: Any = None) -> list[dict]:
    """The rows of a catalog query, as dicts."""
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute(query, params).fetchall()


_Q_CLASSES = """
SELECT c.relname::text AS relname, c.oid::int AS oid FROM pg_class c
WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relname = ANY(%s)
"""

_Q_TABLES = """
SELECT c.oid::int AS oid, c.relname::text AS relname, c.reltype::int AS reltype,
       t.typarray::int AS typarray, pg_get_userbyid(c.relowner)::text AS owner,
       c.relrowsecurity, c.relforcerowsecurity, c.relreplident::text AS relreplident,
       c.reloptions, ri.relname::text AS replica_index,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_type t ON t.oid = c.reltype
LEFT JOIN pg_index ix ON ix.indrelid = c.oid AND ix.indisreplident
LEFT JOIN pg_class ri ON ri.oid = ix.indexrelid
WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
"""

_Q_COLUMNS = """
SELECT a.attrelid::int AS relid, a.attnum::int AS attnum, a.attname::text AS attname,
       a.attnotnull, col_description(a.attrelid, a.attnum) AS comment
FROM pg_attribute a
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""

_Q_DEPEND = """
SELECT d.classid::int AS classid, d.objid::int AS objid, d.objsubid, d.refclassid::int AS refclassid,
       d.refobjid::int AS refobjid, d.refobjsubid, r.ev_class::int AS ev_class,
       r.rulename::text AS rulename, v.reltype::int AS ev_reltype, vt.typarray::int AS ev_typarray
FROM unnest(%s::oid[], %s::oid[]) AS f(cls, obj)
JOIN pg_depend d ON d.refclassid = f.cls AND d.refobjid = f.obj
LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
LEFT JOIN pg_class v ON v.oid = r.ev_class AND r.rulename = '_RETURN'
LEFT JOIN pg_type vt ON vt.oid = v.reltype
WHERE d.deptype IN ('n', 'a')
"""

# Grants other than the owner's own, and (for functions) what differs from the default ACL,
# as rows (oid, op, grantee, privilege, grantable); `op` is 'grant' or 'revoke'.
_Q_ACL = """
WITH o AS (
    SELECT {oid}::int AS oid, {acl} AS acl, {owner} AS owner, '{deftype}'::"char" AS t
    FROM {catalog} WHERE {oid} = ANY(%s)
)
SELECT o.oid, 'grant' AS op, a.grantee::int AS grantee,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS role,
       a.privilege_type AS privilege, a.is_grantable AS grantable
FROM o CROSS JOIN LATERAL aclexplode(coalesce(o.acl, acldefault(o.t, o.owner))) a
WHERE a.grantee <> o.owner AND NOT EXISTS (
    SELECT 1 FROM aclexplode(acldefault(o.t, o.owner)) d
    WHERE d.grantee = a.grantee AND d.privilege_type = a.privilege_type)
UNION ALL
SELECT o.oid, 'revoke', d.grantee::int,
       CASE WHEN d.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(d.grantee)::text END,
       d.privilege_type, false
FROM o CROSS JOIN LATERAL aclexplode(acldefault(o.t, o.owner)) d
WHERE d.grantee <> o.owner AND NOT EXISTS (
    SELECT 1 FROM aclexplode(coalesce(o.acl, acldefault(o.t, o.owner))) a
    WHERE a.grantee = d.grantee AND a.privilege_type = d.privilege_type)
"""

_Q_COLUMN_ACL = """
SELECT a.attrelid::int AS oid, a.attname::text AS column, x.grantee::int AS grantee,
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee)::text END AS role,
       x.privilege_type AS privilege, x.is_grantable AS grantable
FROM pg_attribute a CROSS JOIN LATERAL aclexplode(a.attacl) x
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
"""

_Q_RELATIONS = """
SELECT c.oid::int AS oid, n.nspname::text AS nspname, c.relname::text AS relname,
       c.relkind::text AS relkind, c.reloptions, pg_get_userbyid(c.relowner)::text AS owner,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS query,
       obj_description(c.oid, 'pg_class') AS comment,
       i.indrelid::int AS indrelid, i.indisvalid,
       CASE WHEN c.relkind IN ('i', 'I') AND co.oid IS NULL
            AND c.relname !~ '^hcu?_idx_' THEN pg_get_indexdef(c.oid) END AS indexdef,
       co.oid::int AS constraint_oid
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_constraint co ON co.conindid = c.oid AND co.contype IN ('p', 'u', 'x')
WHERE c.oid = ANY(%s)
"""

_Q_INDEX_NAMES = """
SELECT c.oid::int AS oid, c.relname::text AS relname, i.indrelid::int AS indrelid
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ANY(%s)
"""

_Q_PROCS = """
SELECT p.oid::int AS oid, n.nspname::text AS nspname, p.proname::text AS proname,
       p.prokind::text AS prokind, l.lanname::text AS lanname,
       p.prosqlbody IS NOT NULL AS atomic, p.proconfig, p.prosrc,
       pg_get_userbyid(p.proowner)::text AS owner,
       pg_get_function_identity_arguments(p.oid) AS args,
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) END AS functiondef,
       obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = ANY(%s)
"""

_Q_TEXT_PROCS = """
SELECT p.oid::int AS oid, n.nspname::text AS nspname, p.proname::text AS proname,
       l.lanname::text AS lanname, p.prosrc, p.proconfig
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname <> ALL (ARRAY['pg_catalog', 'information_schema'])
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND p.prosqlbody IS NULL AND p.prokind IN ('f', 'p')
  AND l.lanname <> ALL (ARRAY['c', 'internal'])
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                  AND e.objid = p.oid AND e.deptype = 'e')
"""

_Q_CONSTRAINTS = """
SELECT co.oid::int AS oid, co.conname::text AS conname, co.contype::text AS contype,
       co.conrelid::int AS conrelid, co.confrelid::int AS confrelid,
       rn.nspname::text AS relschema, r.relname::text AS relname,
       pg_get_constraintdef(co.oid) AS def, obj_description(co.oid, 'pg_constraint') AS comment
FROM pg_constraint co
JOIN pg_class r ON r.oid = co.conrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE co.oid = ANY(%s)
"""

_Q_TRIGGERS = """
SELECT t.oid::int AS oid, t.tgname::text AS tgname, t.tgrelid::int AS tgrelid,
       rn.nspname::text AS relschema, r.relname::text AS relname, t.tgisinternal,
       t.tgenabled::text AS tgenabled,
       CASE WHEN NOT t.tgisinternal AND t.tgname !~ '^hc_.+_(logtrigger|status_trigger)$'
            THEN pg_get_triggerdef(t.oid) END AS def,
       obj_description(t.oid, 'pg_trigger') AS comment
FROM pg_trigger t
JOIN pg_class r ON r.oid = t.tgrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE t.oid = ANY(%s)
"""

_Q_RULES = """
SELECT w.oid::int AS oid, w.rulename::text AS rulename, w.ev_class::int AS relid,
       rn.nspname::text AS relschema, r.relname::text AS relname, w.ev_enabled::text AS enabled,
       pg_get_ruledef(w.oid) AS def, obj_description(w.oid, 'pg_rewrite') AS comment
FROM pg_rewrite w
JOIN pg_class r ON r.oid = w.ev_class
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE w.oid = ANY(%s)
"""

_Q_POLICIES = """
SELECT p.oid::int AS oid, p.polname::text AS polname, p.polrelid::int AS relid,
       rn.nspname::text AS relschema, r.relname::text AS relname,
       p.polcmd::text AS cmd, p.polpermissive,
       ARRAY(SELECT CASE WHEN x = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x)::text END
             FROM unnest(p.polroles) x) AS roles,
       pg_get_expr(p.polqual, p.polrelid) AS qual,
       pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck,
       obj_description(p.oid, 'pg_policy') AS comment
FROM pg_policy p
JOIN pg_class r ON r.oid = p.polrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE p.oid = ANY(%s)
"""

_Q_ATTRDEFS = """
SELECT d.oid::int AS oid, d.adrelid::int AS relid, a.attname::text AS attname,
       rn.nspname::text AS relschema, r.relname::text AS relname,
       pg_get_expr(d.adbin, d.adrelid) AS expr, a.attgenerated::text AS generated
FROM pg_attrdef d
JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
JOIN pg_class r ON r.oid = d.adrelid
JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE d.oid = ANY(%s)
"""

_Q_STATS = """
SELECT s.oid::int AS oid, n.nspname::text AS nspname, s.stxname::text AS stxname,
       s.stxrelid::int AS relid, pg_get_statisticsobjdef(s.oid) AS def,
       s.stxstattarget::int AS stattarget, pg_get_userbyid(s.stxowner)::text AS owner,
       obj_description(s.oid, 'pg_statistic_ext') AS comment
FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace
WHERE s.oid = ANY(%s)
"""

_Q_PUBRELS = """
SELECT pr.oid::int AS oid, p.pubname::text AS pubname, pr.prrelid::int AS relid,
       ARRAY(SELECT a.attname::text FROM unnest(pr.prattrs::int2[]) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = pr.prrelid AND a.attnum = k.num
             ORDER BY k.ord) AS columns,
       pg_get_expr(pr.prqual, pr.prrelid) AS qual
FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
WHERE pr.oid = ANY(%s)
"""

_Q_DESCRIBE = """
SELECT f.cls::int AS classid, f.obj::int AS objid, f.sub::int AS objsubid,
       pg_describe_object(f.cls, f.obj, f.sub) AS description
FROM unnest(%s::oid[], %s::oid[], %s::int[]) AS f(cls, obj, sub)
"""

_Q_SCHEMA = """
SELECT n.oid::int AS oid, pg_get_userbyid(n.nspowner)::text AS owner,
       obj_description(n.oid, 'pg_namespace') AS comment
FROM pg_namespace n WHERE n.nspname = %s
"""

_Q_DEFAULT_ACL = """
SELECT pg_get_userbyid(d.defaclrole)::text AS owner, d.defaclobjtype::text AS objtype,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS role,
       a.privilege_type AS privilege, a.is_grantable AS grantable
FROM pg_default_acl d CROSS JOIN LATERAL aclexplode(d.defaclacl) a
WHERE d.defaclnamespace = %s
"""

_Q_SCHEMA_PUBLICATIONS = """
SELECT p.pubname::text AS pubname FROM pg_publication_namespace pn
JOIN pg_publication p ON p.oid = pn.pnpubid WHERE pn.pnnspid = %s
"""

_Q_SYSTEM = """
SELECT c.oid::int AS oid, c.relname::text AS relname, c.relkind::text AS relkind
FROM pg_class c WHERE c.relnamespace = %s AND c.relname = ANY(%s)
"""

_Q_SCHEMA_FUNCTIONS = """
SELECT p.oid::int AS oid, n.nspname::text AS nspname, p.proname::text AS proname,
       pg_get_function_identity_arguments(p.oid) AS args
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE (n.nspname = %s AND (p.proname = ANY(%s) OR p.proname ~ '^hc_.+_(logger|status)$'))
   OR (n.nspname = 'public' AND p.proname = 'get_xmlbinary')
"""

_DEFACL_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}
_POLICY_COMMANDS = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}


# --- the scan ----------------------------------------------------------------------------------


class _Scan:
    """One pass over the catalog from `home`'s tables; `away` is where things are carried."""

    def __init__(
        self,
        conn: psycopg.Connection,
        home: str,
        tables: list[str],
        away: str,
        *,
        forward: bool,
        with_managed: bool,
    ):
        self.conn, self.home, self.tables, self.away = conn, home, tables, away
        self.forward, self.with_managed = forward, with_managed
        self.objects: list[DbObject] = []
        self.managed: list[DbObject] = []
        self.renames = Renames({(home, t): (away, t) for t in tables})
        self.table_oid: dict[str, int] = {}
        self.table_of: dict[int, dict] = {}  # oid -> table row
        self.columns: dict[int, dict[int, dict]] = defaultdict(dict)
        # closure: node key -> info; edges: dependent key -> set of (node key, column)
        self.nodes: dict[tuple, dict] = {}
        self.edges: dict[tuple, set[tuple]] = defaultdict(set)
        self.users: dict[tuple, set[tuple]] = defaultdict(set)  # node -> its dependents
        self.dependents: dict[str, set[int]] = defaultdict(set)  # catalog -> oids
        self.others: set[tuple[int, int, int]] = set()

    # -- entry point --------------------------------------------------------------------------

    def run(self) -> tuple[list[DbObject], list[DbObject]]:
        with catalog_snapshot(self.conn):
            self.cls = {
                r["relname"]: r["oid"] for r in fetch(self.conn, _Q_CLASSES, (list(_CATALOGS),))
            }
            self.cls_name = {v: k for k, v in self.cls.items()}
            self._tables()
            self._closure()
            self._nodes()
            self._dependents()
            self._table_items()
            self._schema_items()
            self._text_functions()
            if self.with_managed:
                self._managed()
        self._depths()
        self.objects.sort(key=lambda o: (o.depth, _RANK.get(o.kind, 50), o.identity))
        return self.objects, self.managed

    # -- the changed tables ---------------------------------------------------------------------

    def _tables(self) -> None:
        rows = fetch(self.conn, _Q_TABLES, (self.home, self.tables))
        for r in rows:
            self.table_oid[r["relname"]] = r["oid"]
            self.table_of[r["oid"]] = r
        missing = [t for t in self.tables if t not in self.table_oid]
        if missing:
            raise UserError(f"no table {', '.join(missing)} in schema {self.home}")
        for r in fetch(self.conn, _Q_COLUMNS, (list(self.table_of),)):
            self.columns[r["relid"]][r["attnum"]] = r

    def _tname(self, oid: int) -> str:
        return qname(self.home, self.table_of[oid]["relname"])

    # -- following pg_depend ------------------------------------------------------------------

    def _closure(self) -> None:
        pg_class, pg_type, pg_proc = self.cls["pg_class"], self.cls["pg_type"], self.cls["pg_proc"]
        owner_of: dict[tuple[int, int], tuple] = {}
        frontier: list[tuple[int, int]] = []
        for oid, t in self.table_of.items():
            key = ("rel", oid)
            self.nodes[key] = {"kind": "table", "depth": 0}
            for ref in ((pg_class, oid), (pg_type, t["reltype"]), (pg_type, t["typarray"])):
                if ref[1]:
                    owner_of[ref] = key
                    frontier.append(ref)
        while frontier:
            rows = fetch(self.conn, _Q_DEPEND, ([c for c, _ in frontier], [o for _, o in frontier]))
            frontier = []
            for r in rows:
                ref_node = owner_of.get((r["refclassid"], r["refobjid"]))
                if ref_node is None:
                    continue
                column = r["refobjsubid"] if r["refclassid"] == pg_class else 0
                catalog = self.cls_name.get(r["classid"])
                if catalog == "pg_rewrite" and r["rulename"] == "_RETURN":
                    dep = ("rel", r["ev_class"])
                    if dep == ref_node:
                        continue
                    if dep not in self.nodes:
                        self.nodes[dep] = {"kind": "relation"}
                        for ref in (
                            (pg_class, r["ev_class"]),
                            (pg_type, r["ev_reltype"]),
                            (pg_type, r["ev_typarray"]),
                        ):
                            if ref[1]:
                                owner_of[ref] = dep
                                frontier.append(ref)
                elif catalog == "pg_proc":
                    dep = ("proc", r["objid"])
                    if dep not in self.nodes:
                        self.nodes[dep] = {"kind": "function"}
                        owner_of[(pg_proc, r["objid"])] = dep
                        frontier.append((pg_proc, r["objid"]))
                elif catalog == "pg_class" and r["objsubid"]:
                    dep = ("other", r["classid"], r["objid"], r["objsubid"])
                    self.others.add((r["classid"], r["objid"], r["objsubid"]))
                elif catalog in _DEPENDENT_CATALOGS:
                    dep = (catalog, r["objid"])
                    self.dependents[catalog].add(r["objid"])
                else:
                    dep = ("other", r["classid"], r["objid"], r["objsubid"])
                    self.others.add((r["classid"], r["objid"], r["objsubid"]))
                self.edges[dep].add((ref_node, column))
                self.users[ref_node].add(dep)

    # -- views, materialized views and functions of the closure --------------------------------

    def _nodes(self) -> None:
        rel_oids = [k[1] for k, v in self.nodes.items() if k[0] == "rel" and v["kind"] != "table"]
        proc_oids = [k[1] for k in self.nodes if k[0] == "proc"]
        relations = {r["oid"]: r for r in fetch(self.conn, _Q_RELATIONS, (rel_oids,))}
        procs = {r["oid"]: r for r in fetch(self.conn, _Q_PROCS, (proc_oids,))}
        acl = self._acls("pg_class", rel_oids) | self._acls("pg_proc", proc_oids)
        self.node_objects: dict[tuple, DbObject] = {}
        for key in self._topological():
            if key[0] == "rel" and key[1] in relations:
                obj = self._relation_node(relations[key[1]], acl.get(key[1], []))
            elif key[0] == "proc" and key[1] in procs:
                obj = self._function_node(procs[key[1]], acl.get(key[1], []))
            else:
                continue
            obj._node = key
            self.node_objects[key] = obj
            self.objects.append(obj)
        for obj in list(self.node_objects.values()):
            self._classify_node(obj)

    def _topological(self) -> list[tuple]:
        """Closure nodes, each after every node it depends on."""
        depth: dict[tuple, int] = {}

        def visit(key: tuple, stack: frozenset) -> int:
            if key in depth:
                return depth[key]
            if self.nodes.get(key, {}).get("kind") == "table":
                return 0
            refs = [ref for ref, _ in self.edges.get(key, ()) if ref not in stack and ref != key]
            depth[key] = 1 + max((visit(r, stack | {key}) for r in refs), default=0)
            return depth[key]

        keys = [k for k, v in self.nodes.items() if v["kind"] != "table"]
        for k in keys:
            visit(k, frozenset())
        self.node_depth = depth
        return sorted(keys, key=lambda k: (depth[k], k))

    def _acls(self, catalog: str, oids: list[int]) -> dict[int, list[dict]]:
        if not oids:
            return {}
        if catalog == "pg_class":
            spec = dict(oid="oid", acl="relacl", owner="relowner", deftype="r", catalog="pg_class")
        else:
            spec = dict(oid="oid", acl="proacl", owner="proowner", deftype="f", catalog="pg_proc")
        out: dict[int, list[dict]] = defaultdict(list)
        for r in fetch(self.conn, _Q_ACL.format(**spec), (oids,)):
            out[r["oid"]].append(r)
        return out

    def _relation_node(self, r: dict, acl: list[dict]) -> DbObject:
        kind = {"v": "view", "m": "materialized_view"}.get(r["relkind"], "relation")
        word = "VIEW" if kind == "view" else "MATERIALIZED VIEW"
        name = qname(r["nspname"], r["relname"])
        obj = DbObject(
            kind=kind,
            schema_=r["nspname"],
            name=r["relname"],
            oid=r["oid"],
            identity=f"{kind.replace('_', ' ')} {name}",
            definition=f"CREATE {word} {name} AS {(r['query'] or '').strip()}",
        )
        obj._detail = {
            "relkind": r["relkind"],
            "reloptions": r["reloptions"] or [],
            "owner": r["owner"],
            "acl": acl,
            "comment": r["comment"],
            "query": r["query"],
        }
        if kind == "relation":
            obj.kind = "other"
            obj.flags.append(f"relation of kind {r['relkind']!r} depends on a changed table")
            return obj
        try:
            obj._tree = retarget.parse_one(r["query"])
        except (ParseError, ValueError) as exc:
            obj.flags.append(f"pglast cannot parse the definition: {exc}")
        return obj

    def _function_node(self, r: dict, acl: list[dict]) -> DbObject:
        sig = f"{qname(r['nspname'], r['proname'])}({r['args']})"
        obj = DbObject(
            kind="function",
            schema_=r["nspname"],
            name=r["proname"],
            oid=r["oid"],
            identity=f"function {sig}",
            definition=(r["functiondef"] or f"-- {r['prokind']} {sig}").strip(),
        )
        obj._detail = {
            "language": r["lanname"],
            "atomic": r["atomic"],
            "config": r["proconfig"],
            "owner": r["owner"],
            "acl": acl,
            "comment": r["comment"],
            "args": r["args"],
            "prosrc": r["prosrc"],
            "prokind": r["prokind"],
        }
        if r["functiondef"]:
            try:
                obj._tree = retarget.parse_one(r["functiondef"])
            except (ParseError, ValueError) as exc:
                obj.flags.append(f"pglast cannot parse the definition: {exc}")
        return obj

    def _classify_node(self, obj: DbObject) -> None:
        """Views, materialized views and functions bound by OID, in dependency order."""
        home = obj.schema_ == self.home
        tree = obj._tree
        obj.depth = self.node_depth.get(obj._node, 1)
        obj.depends_on = self._depends(obj._node)
        obj.columns = self._columns(obj._node)
        if tree is None:
            self._manual(
                obj, "cannot be re-targeted automatically: recreate it against NEW by hand"
            )
            return
        signature_hits: set[Name] = set()
        if obj.kind == "function":
            signature = [p.argType for p in tree.parameters or ()] + [tree.returnType]
            for typ in signature:
                if typ is not None:
                    signature_hits |= retarget.rewrite(typ, self.renames)
        hits = retarget.rewrite(tree, self.renames) | signature_hits
        body = None
        if obj.kind == "function" and not obj._detail["atomic"]:
            body = self._rewrite_text_function(obj, tree)
            if body is None:
                return  # classified manual by the body scan
            hits |= body
        if not hits:
            obj.phase, obj.action = "none", "follow"
            via = [d for d in obj.depends_on if not d.startswith("table ")]
            obj.reason = (
                f"bound through {', '.join(via)}, which keeps its name: nothing to change"
                if via
                else "references nothing that moves"
            )
            return
        if home:
            target = (self.away, obj.name)
            if obj.kind == "function":
                tree.funcname = retarget.name_nodes(*target)
                self.renames.functions[(self.home, obj.name)] = target
            else:
                self.renames.relations[(self.home, obj.name)] = target
            self._set(obj, "prep", "copy", target=qname(*target))
            if obj.kind == "materialized_view":
                self._refresh(obj)
            return
        if obj.kind == "function" and signature_hits:
            self._manual(
                obj,
                "its signature uses a changed table's row type; PostgreSQL cannot change a "
                "function's signature in place: create it against NEW and move its callers by hand",
            )
            return
        if obj.kind == "materialized_view":
            users = sorted(
                self.node_objects[k].identity if k in self.node_objects else _describe_key(k)
                for k in self.users.get(obj._node, ())
                if k[0] not in ("pg_class", "pg_statistic_ext")  # its indexes come along
            )
            if users:
                self._manual(
                    obj,
                    "a materialized view cannot be replaced in place, and dropping it would drop "
                    f"{', '.join(users)}: recreate them together by hand",
                )
                return
            self._set(obj, "cutover", "recreate", target="in place")
            return
        self._set(obj, "cutover", "replace", target="in place")

    def _refresh(self, obj: DbObject) -> None:
        refresh = DbObject(
            kind="materialized_view",
            schema_=obj.schema_,
            name=obj.name,
            identity=f"refresh of the copy of {obj.identity}",
            definition=f"REFRESH MATERIALIZED VIEW {qname(self.away, obj.name)}",
            depends_on=[obj.identity],
            depth=obj.depth + 1,
        )
        refresh._key = ("refresh", obj.name)
        self._set(refresh, "cutover", "refresh", target=qname(self.away, obj.name))
        self.objects.append(refresh)

    def _rewrite_text_function(self, obj: DbObject, tree: ast.Node) -> set[Name] | None:
        """Apply the body scan to a plpgsql/SQL function of the closure; None if manual."""
        body = retarget.function_body(tree)
        language = obj._detail["language"]
        if body is None or language not in ("sql", "plpgsql"):
            self._manual(obj, f"a {language} body cannot be analysed: check it by hand")
            return None
        scanned = retarget.scan_body(body, self.renames, language=language)
        problem = _body_problem(scanned)
        if problem:
            self._manual(obj, problem)
            return None
        hits = set(scanned.qualified)
        if scanned.rewritten is not None:
            retarget.set_function_body(tree, scanned.rewritten)
        path = retarget.function_path(tree)
        if path is not None and scanned.unqualified:
            moved = self._moved_path(path)
            if moved != path:
                retarget.set_function_path(tree, moved)
                hits.add((self.home, "search_path"))
        return hits

    def _moved_path(self, path: list[str]) -> list[str]:
        """A function's own search_path after the move (forward: NEW before OLD)."""
        if self.home not in path:
            return path
        if self.forward:
            return retarget.path_with(path, self.away, before=self.home)
        return retarget.path_without(path, self.home)

    # -- objects attached to the tables and closure nodes ---------------------------------------

    def _dependents(self) -> None:
        d = self.dependents
        self._constraints(fetch(self.conn, _Q_CONSTRAINTS, (sorted(d["pg_constraint"]),)))
        self._triggers(fetch(self.conn, _Q_TRIGGERS, (sorted(d["pg_trigger"]),)))
        self._rules(fetch(self.conn, _Q_RULES, (sorted(d["pg_rewrite"]),)))
        self._policies(fetch(self.conn, _Q_POLICIES, (sorted(d["pg_policy"]),)))
        self._attrdefs(fetch(self.conn, _Q_ATTRDEFS, (sorted(d["pg_attrdef"]),)))
        self._statistics(fetch(self.conn, _Q_STATS, (sorted(d["pg_statistic_ext"]),)))
        self._publications(fetch(self.conn, _Q_PUBRELS, (sorted(d["pg_publication_rel"]),)))
        self._classes(fetch(self.conn, _Q_RELATIONS, (sorted(d["pg_class"]),)))
        self._others()

    def _owner(self, relid: int) -> str:
        """Where an attached object's relation stands: a changed table, a copied node, or else."""
        if relid in self.table_of:
            return "table"
        obj = self.node_objects.get(("rel", relid))
        if obj is None:
            return "other"
        if obj.action == "copy":
            return "copy"
        if obj.action == "recreate":
            return "recreate"
        return "other"

    def _attached(
        self,
        kind: str,
        catalog: str,
        r: dict,
        *,
        name: str,
        relid: int,
        relschema: str,
        relname: str,
        definition: str,
        key: tuple,
    ) -> DbObject:
        table = qname(relschema, relname)
        obj = DbObject(
            kind=kind,
            schema_=relschema,
            name=name,
            table=table,
            oid=r["oid"],
            identity=f"{kind.replace('_', ' ')} {quote(name)} on {table}",
            definition=definition,
        )
        obj._node = (catalog, r["oid"])
        obj._key = key
        obj._detail = {"comment": r.get("comment"), "relid": relid}
        obj.depends_on = self._depends(obj._node)
        obj.columns = self._columns(obj._node)
        self.objects.append(obj)
        return obj

    def _retarget(self, obj: DbObject, text: str) -> set[Name] | None:
        try:
            obj._tree = retarget.parse_one(text)
        except (ParseError, ValueError) as exc:
            self._manual(obj, f"pglast cannot parse the definition ({exc}): carry it by hand")
            return None
        return retarget.rewrite(obj._tree, self.renames)

    def _place(self, obj: DbObject, relid: int, hits: set[Name], phase: str) -> None:
        """Attached to a changed table or a copy: carry it there; elsewhere: replace in place."""
        owner = self._owner(relid)
        if owner == "recreate":
            self._set(
                obj, "cutover", "recreate", target="in place",
                reason="dropped with its materialized view, so created again after it",
            )  # fmt: skip
        elif owner == "table":
            obj._detail["target_rel"] = self.table_of[relid]["relname"]
            target = qname(self.away, obj._detail["target_rel"])
            self._set(obj, phase, "attach", target=f"on {target}")
        elif owner == "copy":
            obj._detail["target_rel"] = self.node_objects[("rel", relid)].name
            target = qname(self.away, obj._detail["target_rel"])
            self._set(
                obj, "prep", "attach", target=f"on {target}",
                reason="created in NEW right after the copy it belongs to",
            )  # fmt: skip
        elif hits:
            self._set(obj, "cutover", "replace", target="in place")
        else:
            obj.phase, obj.action = "none", "follow"
            obj.reason = "bound through an object that keeps its name: nothing to change"

    def _constraints(self, rows: list[dict]) -> None:
        for r in rows:
            relid, contype = r["conrelid"], r["contype"]
            if relid in self.table_of and contype == "p":
                continue  # HC's primary key: listed as managed
            if contype == "t":
                continue  # a constraint trigger's constraint: carried with the trigger
            kind = "foreign_key" if contype == "f" else "constraint"
            table = qname(r["relschema"], r["relname"])
            text = f"ALTER TABLE {table} ADD CONSTRAINT {quote(r['conname'])} {r['def']}"
            obj = self._attached(
                kind, "pg_constraint", r, name=r["conname"], relid=relid,
                relschema=r["relschema"], relname=r["relname"], definition=text,
                key=(kind, self._rel_key(relid, r["relschema"], r["relname"]), r["conname"]),
            )  # fmt: skip
            hits = self._retarget(obj, text)
            if hits is None:
                continue
            if kind == "foreign_key" and relid not in self.table_of:
                if hits:
                    self._set(obj, "cutover", "replace", target="in place")
                else:
                    obj.phase, obj.action, obj.reason = (
                        "none",
                        "follow",
                        "references nothing that moves",
                    )
                continue
            phase = "cutover" if kind == "foreign_key" else "prep"
            self._place(obj, relid, hits, phase)
            if kind == "constraint" and obj.action == "attach":
                obj.flags.append("rejects hc2's sync writes that violate it, as it does hc1's")
            if kind == "foreign_key" and obj.action == "attach":
                obj.flags.append(
                    "validated in the cutover: a row without its parent aborts the cutover;"
                    " check for orphans first"
                )

    def _triggers(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["tgrelid"]
            if r["tgisinternal"] or r["def"] is None:
                continue  # FK machinery, or named like HC's own
            if relid in self.table_of and r["tgname"] in _hc_triggers(
                self.table_of[relid]["relname"]
            ):
                continue
            obj = self._attached(
                "trigger", "pg_trigger", r, name=r["tgname"], relid=relid,
                relschema=r["relschema"], relname=r["relname"], definition=r["def"],
                key=("trigger", self._rel_key(relid, r["relschema"], r["relname"]), r["tgname"]),
            )  # fmt: skip
            obj._detail["enabled"] = r["tgenabled"]
            hits = self._retarget(obj, r["def"])
            if hits is None:
                continue
            self._place(obj, relid, hits, "cutover")

    def _rules(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["relid"]
            obj = self._attached(
                "rule", "pg_rewrite", r, name=r["rulename"], relid=relid,
                relschema=r["relschema"], relname=r["relname"], definition=r["def"].rstrip(";"),
                key=("rule", self._rel_key(relid, r["relschema"], r["relname"]), r["rulename"]),
            )  # fmt: skip
            obj._detail["enabled"] = r["enabled"]
            hits = self._retarget(obj, r["def"])
            if hits is None:
                continue
            self._place(obj, relid, hits, "cutover")

    def _policies(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["relid"]
            table = qname(r["relschema"], r["relname"])
            roles = ", ".join(role(x) for x in r["roles"]) or "PUBLIC"
            text = (
                f"CREATE POLICY {quote(r['polname'])} ON {table}"
                f" AS {'PERMISSIVE' if r['polpermissive'] else 'RESTRICTIVE'}"
                f" FOR {_POLICY_COMMANDS[r['cmd']]} TO {roles}"
                + (f" USING ({r['qual']})" if r["qual"] else "")
                + (f" WITH CHECK ({r['withcheck']})" if r["withcheck"] else "")
            )
            obj = self._attached(
                "policy", "pg_policy", r, name=r["polname"], relid=relid,
                relschema=r["relschema"], relname=r["relname"], definition=text,
                key=("policy", self._rel_key(relid, r["relschema"], r["relname"]), r["polname"]),
            )  # fmt: skip
            hits = self._retarget(obj, text)
            if hits is None:
                continue
            self._place(obj, relid, hits, "prep")

    def _attrdefs(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["relid"]
            if relid in self.table_of and r["attname"] == "id":
                continue  # HC's serial
            table = qname(r["relschema"], r["relname"])
            if r["generated"]:
                text = f"-- generated column {quote(r['attname'])} of {table}: {r['expr']}"
                obj = self._attached(
                    "other", "pg_attrdef", r, name=r["attname"], relid=relid,
                    relschema=r["relschema"], relname=r["relname"], definition=text,
                    key=("other", "attrdef", r["oid"]),
                )  # fmt: skip
                self._manual(obj, "a generated column cannot be added to a mapped table safely")
                continue
            text = f"ALTER TABLE {table} ALTER COLUMN {quote(r['attname'])} SET DEFAULT {r['expr']}"
            obj = self._attached(
                "default", "pg_attrdef", r, name=r["attname"], relid=relid,
                relschema=r["relschema"], relname=r["relname"], definition=text,
                key=("default", self._rel_key(relid, r["relschema"], r["relname"]), r["attname"]),
            )  # fmt: skip
            obj.identity = f"default of {table}.{quote(r['attname'])}"
            obj.columns = sorted({*obj.columns, *self._column_ref(relid, r["attname"])})
            hits = self._retarget(obj, text)
            if hits is None:
                continue
            self._place(obj, relid, hits, "prep")

    def _statistics(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["relid"]
            name = qname(r["nspname"], r["stxname"])
            obj = DbObject(
                kind="statistics",
                schema_=r["nspname"],
                name=r["stxname"],
                table=self._tname(relid) if relid in self.table_of else None,
                oid=r["oid"],
                identity=f"statistics {name}",
                definition=r["def"],
            )
            obj._node = ("pg_statistic_ext", r["oid"])
            obj._key = ("statistics", r["stxname"])
            obj._detail = {
                "comment": r["comment"],
                "owner": r["owner"],
                "stattarget": r["stattarget"],
            }
            obj.depends_on = self._depends(obj._node)
            obj.columns = self._columns(obj._node)
            self.objects.append(obj)
            hits = self._retarget(obj, r["def"])
            if hits is None:
                continue
            owner = self._owner(relid)
            if owner in ("table", "copy"):
                obj._tree.defnames = retarget.name_nodes(self.away, r["stxname"])
                obj._tree.if_not_exists = True
                self._set(obj, "prep", "copy", target=qname(self.away, r["stxname"]))
                if r["nspname"] != self.home:
                    obj.flags.append(
                        f"created in {self.away}, not {r['nspname']}, beside its table"
                    )
            else:
                self._manual(obj, "statistics on an object that is recreated: recreate by hand")

    def _publications(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["relid"]
            if relid not in self.table_of:
                continue
            table = self._tname(relid)
            text = (
                f"ALTER PUBLICATION {quote(r['pubname'])} ADD TABLE {table}"
                + (f" ({', '.join(quote(c) for c in r['columns'])})" if r["columns"] else "")
                + (f" WHERE ({r['qual']})" if r["qual"] else "")
            )
            obj = DbObject(
                kind="publication",
                schema_=self.home,
                name=r["pubname"],
                table=table,
                oid=r["oid"],
                identity=f"publication {quote(r['pubname'])}: {table}",
                definition=text,
            )
            obj._node = ("pg_publication_rel", r["oid"])
            obj._key = ("publication", r["pubname"], self.table_of[relid]["relname"])
            obj.depends_on = self._depends(obj._node)
            obj.columns = self._columns(obj._node)
            self.objects.append(obj)
            if self._retarget(obj, text) is None:
                continue
            self._set(
                obj,
                "cutover",
                "attach",
                target=f"adds {qname(self.away, self.table_of[relid]['relname'])}",
            )
            obj.flags.append(
                "subscribers must have the new table and run ALTER SUBSCRIPTION ... REFRESH"
                " PUBLICATION; the old table stays published until it is dropped"
            )

    def _classes(self, rows: list[dict]) -> None:
        for r in rows:
            relid = r["indrelid"]
            if r["relkind"] not in ("i", "I"):
                if r["relkind"] == "S" and r["relname"].endswith("_id_seq"):
                    continue  # HC's serial sequence: managed
                self.others.add((self.cls["pg_class"], r["oid"], 0))
                continue
            if r["constraint_oid"] or r["indexdef"] is None:
                continue  # carried with its constraint, or HC's own (hc_idx_*, hcu_idx_*)
            if relid in self.table_of and _hc_index(r["relname"], self.table_of[relid]["relname"]):
                continue
            table_row = self.table_of.get(relid)
            relschema, relname = (
                r["nspname"],
                (table_row["relname"] if table_row else self._relname(relid)),
            )
            obj = self._attached(
                "index", "pg_class", r, name=r["relname"], relid=relid,
                relschema=relschema, relname=relname, definition=r["indexdef"],
                key=("index", r["relname"]),
            )  # fmt: skip
            obj.identity = f"index {qname(r['nspname'], r['relname'])} on {obj.table}"
            if not r["indisvalid"]:
                obj.flags.append(
                    "the index is INVALID in OLD (a failed CREATE INDEX CONCURRENTLY?)"
                )
            hits = self._retarget(obj, r["indexdef"])
            if hits is None:
                continue
            obj._tree.if_not_exists = True
            self._place(obj, relid, hits, "prep")
            if obj.action == "replace":
                self._manual(
                    obj, "an index on another table whose expression moves: recreate by hand"
                )

    def _relname(self, relid: int) -> str:
        obj = self.node_objects.get(("rel", relid))
        return obj.name if obj else str(relid)

    def _others(self) -> None:
        if not self.others:
            return
        items = sorted(self.others)
        rows = fetch(
            self.conn,
            _Q_DESCRIBE,
            ([c for c, _, _ in items], [o for _, o, _ in items], [s for _, _, s in items]),
        )
        for r in rows:
            obj = DbObject(
                kind="other",
                schema_="",
                name=r["description"] or "?",
                oid=r["objid"],
                identity=r["description"] or f"object {r['classid']}/{r['objid']}",
                definition=f"-- {r['description']}",
            )
            obj._node = ("other", r["classid"], r["objid"], r["objsubid"])
            obj._key = ("other", obj.identity)
            obj.depends_on = self._depends(obj._node)
            self._manual(
                obj, "depends on a changed table in a way the tool does not re-target: move by hand"
            )
            self.objects.append(obj)

    # -- what pg_depend cannot show: grants, comments, options -----------------------------------

    def _table_items(self) -> None:
        oids = list(self.table_of)
        acl = self._acls("pg_class", oids)
        column_acl: dict[int, list[dict]] = defaultdict(list)
        for r in fetch(self.conn, _Q_COLUMN_ACL, (oids,)):
            column_acl[r["oid"]].append(r)
        for oid, t in self.table_of.items():
            relname = t["relname"]
            table = self._tname(oid)
            for g in _merge_grants(acl.get(oid, [])):
                self._grant(oid, relname, table, None, g)
            if t["comment"] is not None:
                self._simple(
                    "comment", oid, f"comment on table {table}",
                    f"COMMENT ON TABLE {table} IS {literal(t['comment'])}",
                    key=("comment", relname, None), detail={"comment": t["comment"]},
                )  # fmt: skip
            for _attnum, col in sorted(self.columns[oid].items()):
                column = quote(col["attname"])
                if col["comment"] is not None:
                    self._simple(
                        "comment", oid, f"comment on column {table}.{column}",
                        f"COMMENT ON COLUMN {table}.{column} IS {literal(col['comment'])}",
                        key=("comment", relname, col["attname"]),
                        detail={"comment": col["comment"], "column": col["attname"]},
                        columns=[f"{relname}.{col['attname']}"],
                    )  # fmt: skip
                if col["attnotnull"] and col["attname"] != "id":
                    self._simple(
                        "not_null", oid, f"not null on {table}.{column}",
                        f"ALTER TABLE {table} ALTER COLUMN {column} SET NOT NULL",
                        key=("not_null", relname, col["attname"]),
                        detail={"column": col["attname"]},
                        columns=[f"{relname}.{col['attname']}"],
                    )  # fmt: skip
            for g in _merge_grants(column_acl.get(oid, []), by_column=True):
                self._grant(oid, relname, table, g["column"], g)
            options = []
            if t["relrowsecurity"]:
                options.append(("row_security", "ENABLE ROW LEVEL SECURITY"))
            if t["relforcerowsecurity"]:
                options.append(("force_row_security", "FORCE ROW LEVEL SECURITY"))
            if t["reloptions"]:
                options.append(("storage", f"SET ({', '.join(t['reloptions'])})"))
            if t["relreplident"] == "f":
                options.append(("replica_identity", "REPLICA IDENTITY FULL"))
            elif t["relreplident"] == "n":
                options.append(("replica_identity", "REPLICA IDENTITY NOTHING"))
            elif t["relreplident"] == "i" and t["replica_index"]:
                options.append(
                    (
                        "replica_identity",
                        f"REPLICA IDENTITY USING INDEX {quote(t['replica_index'])}",
                    )
                )
            for option, clause in options:
                obj = self._simple(
                    "table_option", oid, f"{option.replace('_', ' ')} on {table}",
                    f"ALTER TABLE {table} {clause}", key=("table_option", relname, option),
                    detail={"option": option, "clause": clause, "reloptions": t["reloptions"]},
                )  # fmt: skip
                if option == "force_row_security":
                    obj.flags.append(
                        "FORCE applies the policies to the table owner too: check that hc2's"
                        " sessions are not filtered"
                    )
                if option == "replica_identity":
                    obj.depth = 3  # after the indexes

    def _grant(self, oid: int, relname: str, table: str, column: str | None, g: dict) -> None:
        cols = f" ({quote(column)})" if column else ""
        privileges = ", ".join(g["privileges"])
        grant_option = " WITH GRANT OPTION" if g["grantable"] else ""
        self._simple(
            "grant", oid, f"grant {privileges}{cols} on {table} to {g['role']}",
            f"GRANT {privileges}{cols} ON TABLE {table} TO {role(g['role'])}{grant_option}",
            key=("grant", relname, column, g["role"]),
            detail={"role": g["role"], "privileges": g["privileges"], "column": column,
                    "grantable": g["grantable"]},
            columns=[f"{relname}.{column}"] if column else [],
        )  # fmt: skip

    def _simple(
        self,
        kind: str,
        oid: int,
        identity: str,
        definition: str,
        *,
        key: tuple,
        detail: dict,
        columns: list[str] | None = None,
    ) -> DbObject:
        """An object carried by formatting, not parsing: grant, comment, option, NOT NULL."""
        relname = self.table_of[oid]["relname"]
        obj = DbObject(
            kind=kind,
            schema_=self.home,
            name=relname,
            table=self._tname(oid),
            identity=identity,
            definition=definition,
            columns=columns or [],
            depends_on=[f"table {self._tname(oid)}"],
        )
        obj._key = key
        obj._detail = {**detail, "relname": relname}
        self._set(obj, "prep", "attach", target=f"on {qname(self.away, relname)}")
        self.objects.append(obj)
        return obj

    def _schema_items(self) -> None:
        row = fetch(self.conn, _Q_SCHEMA, (self.home,))[0]
        nsp = row["oid"]
        spec = dict(oid="oid", acl="nspacl", owner="nspowner", deftype="n", catalog="pg_namespace")
        grants = [
            g for g in fetch(self.conn, _Q_ACL.format(**spec), ([nsp],)) if g["op"] == "grant"
        ]
        for g in _merge_grants(grants):
            privileges = ", ".join(g["privileges"])
            obj = DbObject(
                kind="schema_grant",
                schema_=self.home,
                name=self.home,
                identity=f"grant {privileges} on schema {quote(self.home)} to {g['role']}",
                definition=f"GRANT {privileges} ON SCHEMA {quote(self.home)} TO {role(g['role'])}",
                depth=0,
            )
            obj._key = ("schema_grant", g["role"])
            obj._detail = {
                "role": g["role"],
                "privileges": g["privileges"],
                "grantable": g["grantable"],
            }
            self._set(obj, "prep", "attach", target=f"schema {quote(self.away)}")
            self.objects.append(obj)
        defaults: dict[tuple, dict] = {}
        for r in fetch(self.conn, _Q_DEFAULT_ACL, (nsp,)):
            entry = defaults.setdefault(
                (r["owner"], r["objtype"], r["role"]),
                {**r, "privileges": []},
            )
            entry["privileges"].append(r["privilege"])
        for (owner_role, objtype, grantee), r in sorted(defaults.items()):
            objects = _DEFACL_OBJECTS.get(objtype, objtype)
            privileges = ", ".join(sorted(r["privileges"]))
            obj = DbObject(
                kind="default_privileges",
                schema_=self.home,
                name=self.home,
                identity=f"default privileges of {owner_role} in schema {quote(self.home)}: {privileges} on {objects.lower()} to {grantee}",
                definition=(
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {role(owner_role)} IN SCHEMA {quote(self.home)}"
                    f" GRANT {privileges} ON {objects} TO {role(grantee)}"
                ),
                depth=0,
            )
            obj._key = ("default_privileges", owner_role, objtype, grantee)
            obj._detail = {
                "owner": owner_role,
                "objects": objects,
                "role": grantee,
                "privileges": sorted(r["privileges"]),
            }
            self._set(obj, "prep", "attach", target=f"schema {quote(self.away)}")
            self.objects.append(obj)
        for r in fetch(self.conn, _Q_SCHEMA_PUBLICATIONS, (nsp,)):
            obj = DbObject(
                kind="publication",
                schema_=self.home,
                name=r["pubname"],
                identity=f"publication {quote(r['pubname'])}: tables in schema {quote(self.home)}",
                definition=f"ALTER PUBLICATION {quote(r['pubname'])} ADD TABLES IN SCHEMA {quote(self.home)}",
            )
            obj._key = ("publication", r["pubname"], None)
            self._manual(
                obj,
                f"publishes every table of {self.home}: decide whether it should publish "
                f"{self.away} too (and whether subscribers can take the new tables)",
            )
            self.objects.append(obj)

    # -- bodies resolved at run time ---------------------------------------------------------

    def _text_functions(self) -> None:
        watched = self.renames.names()
        simple = {n for n in watched if n == n.lower()}
        mixed = watched - simple
        hc_schemas = self._hc_schemas()
        seen = {k[1] for k in self.nodes if k[0] == "proc"}
        candidates = []
        for r in fetch(self.conn, _Q_TEXT_PROCS):
            if r["oid"] in seen or _hc_function(r["nspname"], r["proname"], hc_schemas):
                continue
            src = r["prosrc"] or ""
            words = set(_WORD.findall(src.lower()))
            if not (words & simple or any(m in src for m in mixed)):
                continue
            scanned = retarget.scan_body(src, self.renames, language=r["lanname"])
            if not (
                scanned.qualified
                or scanned.unqualified
                or scanned.strings_qualified
                or (scanned.dynamic and scanned.strings_loose)
            ):
                continue
            candidates.append((r, scanned))
        if not candidates:
            return
        defs = {
            r["oid"]: r for r in fetch(self.conn, _Q_PROCS, ([r["oid"] for r, _ in candidates],))
        }
        for r, scanned in candidates:
            d = defs[r["oid"]]
            obj = self._function_node(d, [])
            obj._node = ("proc", r["oid"])
            obj._key = ("function", d["proname"], d["args"])
            obj.depth = 1
            self.objects.append(obj)
            self._classify_text_function(obj, scanned)

    def _classify_text_function(self, obj: DbObject, scanned: retarget.BodyScan) -> None:
        language = obj._detail["language"]
        names = sorted(
            {qname(*q) for q in scanned.qualified}
            | {f"{n} (unqualified)" for n in scanned.unqualified}
        )
        obj.depends_on = names
        if language not in ("sql", "plpgsql"):
            self._manual(obj, f"its {language} body names a changed table; it cannot be analysed")
            return
        problem = _body_problem(scanned)
        if problem:
            self._manual(obj, problem)
            return
        tree = obj._tree
        if tree is None:
            self._manual(obj, "pglast cannot parse the definition: check it by hand")
            return
        if scanned.rewritten is not None:
            retarget.set_function_body(tree, scanned.rewritten)
        path = retarget.function_path(tree)
        moved_path = False
        if path is not None and scanned.unqualified:
            moved = self._moved_path(path)
            if moved != path:
                retarget.set_function_path(tree, moved)
                moved_path = True
        if scanned.qualified or moved_path:
            what = []
            if scanned.qualified:
                what.append("names the table qualified in its body")
            if moved_path:
                what.append("pins its own search_path")
            self._set(
                obj, "cutover", "replace", target="in place",
                reason=f"resolved at run time, but {' and '.join(what)}: replaced in place"
                " (same OID, so every caller follows)",
            )  # fmt: skip
            if obj.schema_ == self.home and self.forward:
                obj.flags.append(
                    "kept in OLD and changed in place, so qualified callers follow too"
                )
            return
        obj.phase, obj.action = "none", "follow"
        obj.reason = (
            "resolved at run time through the caller's search_path: follows the switch"
            " (plpgsql caches plans per session: sessions opened before the switch keep"
            " the old table until they reconnect)"
            if path is None
            else "pins a search_path without OLD: the names do not resolve to OLD's tables"
        )

    def _hc_schemas(self) -> set[str]:
        rows = fetch(
            self.conn,
            "SELECT n.nspname::text AS nspname FROM pg_class c JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE c.relname = '_trigger_log' AND c.relkind = 'r'",
        )
        return {r["nspname"] for r in rows}

    # -- Heroku Connect's own objects -----------------------------------------------------------

    def _managed(self) -> None:
        nsp = fetch(self.conn, _Q_SCHEMA, (self.home,))[0]["oid"]
        for r in fetch(self.conn, _Q_SYSTEM, (nsp, list(SYSTEM_TABLES))):
            self._add_managed("system_table", self.home, r["relname"], r["oid"])
        for oid, t in self.table_of.items():
            relname = t["relname"]
            self._add_managed("table", self.home, relname, oid)
            for name in _hc_triggers(relname):
                self._add_managed("trigger", self.home, name, None, table=self._tname(oid))
        for r in fetch(self.conn, _Q_INDEX_NAMES, (list(self.table_of),)):
            relname = self.table_of[r["indrelid"]]["relname"]
            if _hc_index(r["relname"], relname):
                self._add_managed(
                    "index", self.home, r["relname"], r["oid"], table=self._tname(r["indrelid"])
                )
        wanted, tables = set(HC_SCHEMA_FUNCTIONS), set(self.tables)
        for r in fetch(self.conn, _Q_SCHEMA_FUNCTIONS, (self.home, list(wanted))):
            match = _HC_TABLE_FUNCTION.match(r["proname"])
            if match and match.group(1) not in tables:
                continue
            self._add_managed("function", r["nspname"], f"{r['proname']}({r['args']})", r["oid"])

    def _add_managed(
        self, kind: str, schema: str, name: str, oid: int | None, table: str | None = None
    ) -> None:
        obj = DbObject(
            kind=kind,
            schema_=schema,
            name=name,
            table=table,
            oid=oid,
            identity=f"{kind.replace('_', ' ')} {qname(schema, name) if '(' not in name else schema + '.' + name}"
            + (f" on {table}" if table else ""),
            definition="",
            phase="managed",
            action="managed",
            reason="created and maintained by Heroku Connect: hc2's load makes its own in NEW",
        )
        self.managed.append(obj)

    # -- helpers ------------------------------------------------------------------------------

    def _depends(self, node: tuple | None) -> list[str]:
        out = set()
        for ref, _ in self.edges.get(node, ()):
            if ref[0] == "rel" and ref[1] in self.table_of:
                out.add(f"table {self._tname(ref[1])}")
            else:
                obj = getattr(self, "node_objects", {}).get(ref)
                if obj is not None:
                    out.add(obj.identity)
        return sorted(out)

    def _columns(self, node: tuple | None) -> list[str]:
        out = set()
        for ref, column in self.edges.get(node, ()):
            if ref[0] == "rel" and ref[1] in self.table_of and column:
                col = self.columns[ref[1]].get(column)
                if col:
                    out.add(f"{self.table_of[ref[1]]['relname']}.{col['attname']}")
        return sorted(out)

    def _column_ref(self, relid: int, column: str) -> list[str]:
        if relid in self.table_of:
            return [f"{self.table_of[relid]['relname']}.{column}"]
        return []

    def _rel_key(self, relid: int, relschema: str, relname: str) -> str:
        """How an attached object's relation is named in keys: a changed table by its bare
        name (so OLD's and NEW's copies match), anything else qualified."""
        if relid in self.table_of:
            return relname
        node = getattr(self, "node_objects", {}).get(("rel", relid))
        if node is not None and node.schema_ == self.home:
            return relname
        return qname(relschema, relname)

    def _set(
        self,
        obj: DbObject,
        phase: str,
        action: str,
        *,
        target: str | None = None,
        reason: str | None = None,
        reason_kind: str | None = None,
    ) -> None:
        obj.phase, obj.action = phase, action  # type: ignore[assignment]
        obj.reason = reason or REASONS.get((reason_kind or obj.kind, action), "")
        obj.target = target
        if not obj._key:
            obj._key = (
                (obj.kind, obj.name)
                if obj.kind != "function"
                else (obj.kind, obj.name, obj._detail.get("args"))
            )

    def _manual(self, obj: DbObject, reason: str) -> None:
        obj.phase, obj.action, obj.reason = "manual", "review", reason
        if not obj._key:
            obj._key = (obj.kind, obj.identity)

    def _depths(self) -> None:
        """Attached objects come after the nodes they reference."""
        by_node = {o._node: o for o in self.objects if o._node and o._node[0] in ("rel", "proc")}
        for obj in self.objects:
            if obj._node and obj._node[0] not in ("rel", "proc"):
                refs = [r for r, _ in self.edges.get(obj._node, ())]
                depth = max((by_node[r].depth for r in refs if r in by_node), default=0)
                obj.depth = max(obj.depth, depth + 1)


_CATALOGS = (
    "pg_class", "pg_type", "pg_proc", "pg_rewrite", "pg_constraint", "pg_trigger", "pg_policy",
    "pg_attrdef", "pg_statistic_ext", "pg_publication_rel",
)  # fmt: skip
_DEPENDENT_CATALOGS = {
    "pg_rewrite", "pg_constraint", "pg_trigger", "pg_policy", "pg_attrdef", "pg_statistic_ext",
    "pg_publication_rel", "pg_class",
}  # fmt: skip
# Order within one depth: what later statements of the same depth need comes first.
_RANK = {
    "schema_grant": 0, "default_privileges": 1, "table_option": 2, "not_null": 3, "default": 4,
    "constraint": 5, "index": 6, "statistics": 7, "view": 10, "materialized_view": 10,
    "function": 10, "policy": 20, "grant": 21, "comment": 22, "trigger": 30, "rule": 31,
    "foreign_key": 32, "publication": 33,
}  # fmt: skip
_WORD = re.compile(r"[a-z_][a-z0-9_$]*")


def _describe_key(key: tuple) -> str:
    return {"pg_policy": "a policy", "pg_rewrite": "a rule", "pg_trigger": "a trigger"}.get(
        key[0], "another object"
    )


def _body_problem(scanned: retarget.BodyScan) -> str | None:
    if scanned.error:
        return f"the body cannot be read by PostgreSQL's lexer ({scanned.error}): check by hand"
    if scanned.dynamic:
        return (
            "builds SQL at run time (EXECUTE): the strings it runs may name a changed table"
            " qualified, which no rewrite can see; check them by hand"
        )
    if scanned.strings_qualified:
        return (
            f"a string literal names {', '.join(sorted(scanned.strings_qualified))}: if it is run"
            " as SQL it keeps reading OLD; check by hand"
        )
    return None


def _hc_triggers(table: str) -> tuple[str, str]:
    return log_trigger_name(table), status_trigger_name(table)


def _hc_index(name: str, table: str) -> bool:
    return name.startswith(("hc_idx_", "hcu_idx_")) or name == f"{table}_pkey"[:63]


def _hc_function(schema: str, name: str, hc_schemas: set[str]) -> bool:
    if schema == "public" and name == "get_xmlbinary":
        return True
    return schema in hc_schemas and (
        name in HC_SCHEMA_FUNCTIONS or _HC_TABLE_FUNCTION.match(name) is not None
    )


def _merge_grants(rows: list[dict], *, by_column: bool = False) -> list[dict]:
    """ACL rows into one grant per role (and column), privileges in a stable order."""
    merged: dict[tuple, dict] = {}
    for r in rows:
        if r.get("op", "grant") != "grant":
            continue
        key = (r.get("column") if by_column else None, r["role"], r["grantable"])
        entry = merged.setdefault(key, {"column": key[0], "role": r["role"], "grantable": r["grantable"], "privileges": []})  # fmt: skip
        entry["privileges"].append(r["privilege"])
    for entry in merged.values():
        entry["privileges"] = sorted(set(entry["privileges"]), key=_PRIVILEGE_ORDER.index)
    return sorted(merged.values(), key=lambda e: (e["column"] or "", e["role"], e["grantable"]))


_PRIVILEGE_ORDER = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "EXECUTE",
    "USAGE", "CREATE", "CONNECT", "TEMPORARY", "MAINTAIN",
]  # fmt: skip


# --- public API ------------------------------------------------------------------------------


def scan(
    conn: psycopg.Connection,
    home: str,
    tables: list[str],
    away: str,
    *,
    forward: bool = True,
    managed: bool = False,
) -> tuple[list[DbObject], list[DbObject], Renames]:
    """Objects bound to `home`'s `tables`, classified for a move to `away`.

    `forward=False` scans NEW after prep/cutover: a function's pinned path then loses `home`
    instead of gaining `away`. Returns (objects, managed, renames).
    """
    # ACLs name the PUBLIC pseudo-role as PUBLIC; a real role of that name would be granted as
    # the keyword (everyone). Refuse rather than widen a grant.
    if fetch(conn, "SELECT 1 AS x FROM pg_catalog.pg_roles WHERE upper(rolname) = 'PUBLIC'"):
        raise UserError(
            "a role named PUBLIC exists; its grants cannot be told from grants to everyone: "
            'rename the role (ALTER ROLE "PUBLIC" RENAME TO ...) and run again'
        )
    s = _Scan(conn, home, tables, away, forward=forward, with_managed=managed)
    objects, managed = s.run()
    return objects, managed, s.renames


_PLACEHOLDER = "swapbot_new_schema"


def inventory(
    conn: psycopg.Connection, schema: str, tables: list[str], new_schema: str | None = None
) -> Inventory:
    """Every object the swap must carry from `schema` for `tables`, classified by phase.

    With `new_schema`, each carried object also gets its re-targeted definition.
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
        elif obj._tree is not None and obj.phase in ("prep", "cutover"):
            obj.target_definition = retarget.deparse(obj._tree)
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


def _command(args: argparse.Namespace) -> int:
    tables = parse_tables(args.tables)
    check_identifier(args.schema, "schema")
    with connect(args.database_url, autocommit=True) as conn:
        inv = inventory(conn, args.schema, tables, args.new_schema)
    emit(inv.model_dump(mode="json"), render(inv), args.json)
    return 0


def add_command(db_sub) -> argparse.ArgumentParser:
    p = db_sub.add_parser(
        "inventory",
        help="objects the swap must carry from OLD to NEW, classified by phase (reads only)",
        description=__doc__.split("\n\n")[0],
    )
    add_connection_arguments(p)
    p.add_argument("--schema", required=True, help="OLD: the schema hc1 serves")
    p.add_argument("--tables", required=True, help="the changed mappings' tables: a,b")
    p.add_argument("--new-schema", help="NEW, to show each object's re-targeted definition")
    p.set_defaults(func=_command)
    return p
