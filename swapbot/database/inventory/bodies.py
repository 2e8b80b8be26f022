"""Function bodies PostgreSQL resolves at run time (plpgsql, and SQL without BEGIN ATOMIC).

`pg_depend` cannot see what such a body names: it is read with PostgreSQL's own lexer
(`retarget.scan_body`). Functions of the closure get their bodies re-targeted with the rest of
their definition; any other function whose text names a changed table is found here by its
text, and either follows the switch (it names the table unqualified) or is changed in place.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pglast.parser import ParseError

from swapbot.database import retarget
from swapbot.database.inventory import catalog, managed
from swapbot.database.inventory.model import DbObject
from swapbot.database.retarget import Name, qname

if TYPE_CHECKING:
    from swapbot.database.inventory.scanner import Scan

_WORD = re.compile(r"[a-z_][a-z0-9_$]*")
_READABLE = ("sql", "plpgsql")


def function_node(r: dict, acl: list[dict]) -> DbObject:
    """A function's object from its `catalog.BY_OID["pg_proc"]` row."""
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


def body_problem(scanned: retarget.BodyScan) -> str | None:
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


def rewrite_body(s: Scan, obj: DbObject, tree) -> set[Name] | None:
    """Apply the body scan to a plpgsql/SQL function of the closure; None if manual."""
    body = retarget.function_body(tree)
    language = obj._detail["language"]
    if body is None or language not in _READABLE:
        s.manual(obj, f"a {language} body cannot be analysed: check it by hand")
        return None
    scanned = retarget.scan_body(body, s.renames, language=language)
    problem = body_problem(scanned)
    if problem:
        s.manual(obj, problem)
        return None
    hits = set(scanned.qualified)
    if scanned.rewritten is not None:
        retarget.set_function_body(tree, scanned.rewritten)
    if _move_path(s, tree, scanned):
        hits.add((s.home, "search_path"))
    return hits


def _move_path(s: Scan, tree, scanned: retarget.BodyScan) -> bool:
    """Move the function's own `SET search_path` when its body names a table unqualified."""
    path = retarget.function_path(tree)
    if path is None or not scanned.unqualified:
        return False
    moved = s.moved_path(path)
    if moved == path:
        return False
    retarget.set_function_path(tree, moved)
    return True


# --- functions found by their text -------------------------------------------------------------


def collect(s: Scan) -> None:
    """Functions outside the closure whose body names a moved table or function."""
    candidates = _candidates(s)
    if not candidates:
        return
    defs = {r["oid"]: r for r in catalog.by_oid(s.conn, "pg_proc", [r["oid"] for r, _ in candidates])}  # fmt: skip
    for r, scanned in candidates:
        d = defs[r["oid"]]
        obj = function_node(d, [])
        obj._node = ("proc", r["oid"])
        obj._key = ("function", d["proname"], d["args"])
        obj.depth = 1
        s.add(obj)
        _classify(s, obj, scanned)


def _candidates(s: Scan) -> list[tuple[dict, retarget.BodyScan]]:
    watched = s.renames.names()
    simple = {n for n in watched if n == n.lower()}
    mixed = watched - simple
    hc_schemas = managed.hc_schemas(s.conn)
    seen = {k[1] for k in s.graph.nodes if k[0] == "proc"}
    out = []
    for r in catalog.fetch(s.conn, catalog.TEXT_PROCS):
        if r["oid"] in seen or managed.hc_function(r["nspname"], r["proname"], hc_schemas):
            continue
        src = r["prosrc"] or ""
        # A cheap look for the names before PostgreSQL's lexer reads the body.
        if not (set(_WORD.findall(src.lower())) & simple or any(m in src for m in mixed)):
            continue
        scanned = retarget.scan_body(src, s.renames, language=r["lanname"])
        if (
            scanned.qualified
            or scanned.unqualified
            or scanned.strings_qualified
            or (scanned.dynamic and scanned.strings_loose)
        ):
            out.append((r, scanned))
    return out


def _classify(s: Scan, obj: DbObject, scanned: retarget.BodyScan) -> None:
    language = obj._detail["language"]
    obj.depends_on = sorted(
        {qname(*q) for q in scanned.qualified} | {f"{n} (unqualified)" for n in scanned.unqualified}
    )
    if language not in _READABLE:
        s.manual(obj, f"its {language} body names a changed table; it cannot be analysed")
        return
    problem = body_problem(scanned)
    if problem:
        s.manual(obj, problem)
        return
    tree = obj._tree
    if tree is None:
        s.manual(obj, "pglast cannot parse the definition: check it by hand")
        return
    if scanned.rewritten is not None:
        retarget.set_function_body(tree, scanned.rewritten)
    moved_path = _move_path(s, tree, scanned)
    if scanned.qualified or moved_path:
        _in_place(s, obj, scanned, moved_path)
        return
    s.follow(
        obj,
        "resolved at run time through the caller's search_path: follows the switch"
        " (plpgsql caches plans per session: sessions opened before the switch keep"
        " the old table until they reconnect)"
        if retarget.function_path(tree) is None
        else "pins a search_path without OLD: the names do not resolve to OLD's tables",
    )


def _in_place(s: Scan, obj: DbObject, scanned: retarget.BodyScan, moved_path: bool) -> None:
    what = []
    if scanned.qualified:
        what.append("names the table qualified in its body")
    if moved_path:
        what.append("pins its own search_path")
    s.set(
        obj, "cutover", "replace", target="in place",
        reason=f"resolved at run time, but {' and '.join(what)}: replaced in place"
        " (same OID, so every caller follows)",
    )  # fmt: skip
    if obj.schema_ == s.home and s.forward:
        obj.flags.append("kept in OLD and changed in place, so qualified callers follow too")
