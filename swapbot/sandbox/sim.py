"""The sandbox's clock: what Heroku Connect, Salesforce and the Heroku platform do over time.

`Simulator.step(dt)` advances everything by `dt` real seconds (times `speed` nominal seconds):
add-ons provision, dynos boot and stop, connections finish pausing and importing, mappings load
and poll, the writer drains `_trigger_log` into the org, and the org changes by itself.
Every write the simulator makes to a mapped table runs in an HC session, so it is not logged.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from swapbot.sandbox import hcschema, state
from swapbot.sandbox.options import SandboxOptions
from swapbot.sandbox.org import (
    FieldSpec,
    ObjectSpec,
    column_expr,
    field_value_json,
    generate_records,
)

log = logging.getLogger(__name__)

LOADING = ("RELOAD_TABLE", "RESYNC")
SYNCED = ("DATA_SYNCED", "POLLING_SF_CHANGES")
ACTIVE_CONNECTION = ("IDLE", "POLLING_DB_CHANGES")
# A mapping whose table is (re)built, once its config has settled: the load that follows, and
# its kind (a reload empties the table first, a resync writes over the rows already there).
BUILDS = {"INITIAL": ("RELOAD_TABLE", "reload"), "SCHEMA_CHANGED": ("RESYNC", "resync")}


def seconds(value: float) -> sql.Composed:
    return sql.SQL("make_interval(secs => {})").format(sql.Literal(float(value)))


class Simulator:
    def __init__(self, pool, options: SandboxOptions):
        self.pool = pool
        self.options = options
        self.rng = random.Random(options.seed)
        self._carry: dict[str, float] = defaultdict(float)
        self._objects: dict[str, ObjectSpec] = {}
        self._lock = threading.Lock()  # one step at a time, whoever calls it
        self._edits = 0

    # -- helpers --------------------------------------------------------------------------
    def _budget(self, key: str, per_second: float, nominal: float) -> int:
        """Whole units of work due this step; fractions carry over to the next one."""
        self._carry[key] += per_second * nominal
        whole = int(self._carry[key])
        self._carry[key] -= whole
        return whole

    def object(self, conn, name: str) -> ObjectSpec | None:
        if name not in self._objects:
            found = state.row(
                conn, "SELECT spec FROM _hcsandbox.sf_object WHERE lower(name) = lower(%s)", (name,)
            )
            if found is None:
                return None
            self._objects[name] = ObjectSpec.model_validate(found["spec"])
        return self._objects[name]

    def forget_objects(self) -> None:
        self._objects.clear()

    # -- the step -------------------------------------------------------------------------
    def step(self, dt: float) -> None:
        nominal = dt * self.options.speed
        with self._lock, self.pool.connection() as conn:
            conn.autocommit = False
            for part in (self._platform, self._connections, self._org_changes):
                try:
                    with conn.transaction():
                        part(conn, nominal)
                except Exception:
                    log.exception("sandbox step %s failed", part.__name__)

    # -- Heroku platform ------------------------------------------------------------------
    def _platform(self, conn, nominal: float) -> None:
        o = self.options
        conn.execute(
            "UPDATE _hcsandbox.addon SET state = 'provisioned', updated_at = now() "
            "WHERE state = 'provisioning' AND ready_at <= now()"
        )
        conn.execute("DELETE FROM _hcsandbox.dyno WHERE stop_at <= now()")
        conn.execute(
            "UPDATE _hcsandbox.dyno SET state = 'up' WHERE state = 'starting' AND ready_at <= now()"
        )
        for f in state.rows(conn, "SELECT app, type, quantity, size FROM _hcsandbox.formation"):
            running = state.rows(
                conn,
                "SELECT id, num FROM _hcsandbox.dyno WHERE app = %s AND type = %s AND stop_at IS NULL ORDER BY num",
                (f["app"], f["type"]),
            )
            if len(running) > f["quantity"]:
                extra = [d["id"] for d in running[f["quantity"] :]]
                conn.execute(
                    sql.SQL(
                        "UPDATE _hcsandbox.dyno SET stop_at = now() + {} WHERE id = ANY(%s)"
                    ).format(seconds(o.real(o.dyno_shutdown_seconds))),
                    (extra,),
                )
            used = {d["num"] for d in running}
            for num in range(1, f["quantity"] + 1):
                if num in used:
                    continue
                conn.execute(
                    sql.SQL(
                        "INSERT INTO _hcsandbox.dyno (app, type, num, state, size, ready_at) "
                        "VALUES (%s, %s, %s, 'starting', %s, now() + {}) "
                        "ON CONFLICT (app, type, num) DO NOTHING"
                    ).format(seconds(o.real(o.dyno_boot_seconds))),
                    (f["app"], f["type"], num, f["size"]),
                )

    # -- Heroku Connect -------------------------------------------------------------------
    def _connections(self, conn, nominal: float) -> None:
        # Rows are locked while a step changes them, so an API call (abort, reload, resume)
        # waits for the step instead of being overwritten by it.
        for c in state.rows(
            conn,
            "SELECT * FROM _hcsandbox.connection WHERE next_at IS NOT NULL AND next_at <= now() "
            "ORDER BY _id FOR NO KEY UPDATE",
        ):
            self._guarded(conn, c, lambda c=c: self._finish_transition(conn, c))
        for c in state.rows(
            conn,
            "SELECT * FROM _hcsandbox.connection WHERE state = ANY(%s) ORDER BY _id FOR NO KEY UPDATE",
            (list(ACTIVE_CONNECTION),),
        ):
            self._guarded(
                conn,
                c,
                lambda c=c: (self._mappings(conn, c, nominal), self._writer(conn, c, nominal)),
            )

    def _guarded(self, conn, c: dict[str, Any], work) -> None:
        """One connection's work in a savepoint: a broken schema stops that connection only.

        HC reports DB_UNAVAILABLE when its system tables are missing.
        """
        try:
            with conn.transaction():
                work()
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName) as exc:
            log.warning("connection %s: database unavailable: %s", c["id"], exc)
            conn.execute(
                "UPDATE _hcsandbox.connection SET state = 'DB_UNAVAILABLE', next_state = NULL, next_at = NULL "
                "WHERE id = %s",
                (c["id"],),
            )
            conn.execute(
                "INSERT INTO _hcsandbox.notification (connection_id, event_type, message) VALUES (%s, %s, %s)",
                (
                    c["id"],
                    "postgres-connection",
                    f"DatabaseValidationFailed: {exc.diag.message_primary}",
                ),
            )
        except psycopg.Error:
            # Anything else stops this connection's step only; HC would retry on its next cycle.
            log.exception("connection %s: step failed", c["id"])

    def _backlog(self, conn, c: dict[str, Any]) -> int:
        writable = [
            m["table_name"]
            for m in state.rows(
                conn,
                "SELECT table_name, config FROM _hcsandbox.mapping WHERE connection_id = %s",
                (c["id"],),
            )
            if m["config"].get("access") == "read_write"
        ]
        if not writable or not c["schema_name"]:
            return 0
        return conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {}._trigger_log WHERE state IN ('NEW', 'PENDING') AND table_name = ANY(%s)"
            ).format(sql.Identifier(c["schema_name"])),
            (writable,),
        ).fetchone()[0]

    def _finish_transition(self, conn, c: dict[str, Any]) -> None:
        target = c["next_state"]
        if target == "PAUSED" and self._backlog(conn, c):
            return  # HC finishes its pending operations before it pauses
        if c["pending_import"] is not None:
            self.apply_import(conn, c, c["pending_import"])
        if c["state"] == "RECOVERY" and target == "IDLE":
            # Recovering (a restart, a resume, a new authorization) retries mappings in error.
            conn.execute(
                "UPDATE _hcsandbox.mapping SET state = 'DATA_SYNCED', state_description = 'OK', state_since = now() "
                "WHERE connection_id = %s AND state = 'SYSTEM_ERROR'",
                (c["id"],),
            )
        conn.execute(
            "UPDATE _hcsandbox.connection SET state = %s, next_state = NULL, next_at = NULL, "
            "pending_import = NULL WHERE id = %s AND next_state = %s",
            (target, c["id"], target),
        )

    def apply_import(self, conn, c: dict[str, Any], doc: dict[str, Any]) -> None:
        """Create or update the file's mappings; leave the others alone (as observed on HC), or
        remove them (Assumptions.import_leaves_other_mappings)."""
        a = self.options.assumptions
        if not a.import_leaves_other_mappings:
            self._remove_unnamed(conn, c, doc)
        block = doc.get("connection") or {}
        if a.import_applies_connection_block:
            c = _move_to_named_schema(conn, c, block.get("name"))
        if a.import_copies_features:
            features = block.get("features") or {}
            if "poll_db_no_merge" in features:
                conn.execute(
                    "UPDATE _hcsandbox.connection SET features = features || %s WHERE id = %s",
                    (Jsonb({"poll_db_no_merge": bool(features["poll_db_no_merge"])}), c["id"]),
                )
        if doc.get("mappings"):
            ensure_schema(conn, c["schema_name"])  # if configure did not
        for entry in doc.get("mappings", []):
            config = dict(entry["config"])
            fields = dict(config.get("fields") or {})
            if not a.import_accepts_new_fields:
                exported = {
                    r["field"]
                    for r in state.rows(
                        conn,
                        "SELECT field FROM _hcsandbox.export_log WHERE object_name = %s",
                        (entry["object_name"],),
                    )
                }
                fields = {k: v for k, v in fields.items() if k in exported}
                # Indexes and the upsert field on a dropped field go with it.
                config["indexes"] = {
                    k: v for k, v in (config.get("indexes") or {}).items() if k in fields
                }
                if config.get("upsert_field") not in (None, *fields):
                    config.pop("upsert_field")
            config["fields"] = fields
            config.pop("revision", None)
            config.pop("applied_at", None)
            existing = state.row(
                conn,
                "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s AND lower(object_name) = lower(%s)",
                (c["id"], entry["object_name"]),
            )
            if existing is None:
                create_mapping(conn, c["id"], entry["object_name"], config)
            elif a.import_accepts_new_fields:
                update_mapping_config(conn, existing, config)

    def _remove_unnamed(self, conn, c: dict[str, Any], doc: dict[str, Any]) -> None:
        """An import as a full replace: the connection's mappings the file does not name go, as
        a DELETE would take them (a table with dependents is kept, unmanaged)."""
        named = {str(e["object_name"]).lower() for e in doc.get("mappings", [])}
        for m in state.rows(
            conn,
            "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id FOR UPDATE",
            (c["id"],),
        ):
            if m["object_name"].lower() in named:
                continue
            try:
                drop = self.options.assumptions.delete_drops_table
                remove_mapping(conn, c["schema_name"], m, drop_table=drop)
            except psycopg.errors.DependentObjectsStillExist:
                remove_mapping(conn, c["schema_name"], m, drop_table=False)

    def _mappings(self, conn, c: dict[str, Any], nominal: float) -> None:
        o = self.options
        for m in state.rows(
            conn,
            "SELECT *, extract(epoch FROM now() - state_since) AS in_state, "
            "coalesce(extract(epoch FROM now() - last_poll_at), 1e9) AS since_poll "
            "FROM _hcsandbox.mapping WHERE connection_id = %s ORDER BY _id FOR UPDATE",
            (c["id"],),
        ):
            obj = self.object(conn, m["object_name"])
            if m["state"] in BUILDS and m["in_state"] >= o.real(o.initial_seconds):
                if obj is None or any(obj.field(f) is None for f in m["config"]["fields"]):
                    set_state(conn, m["id"], "BAD_CONFIG", "Unknown object or field")
                    continue
                materialize(conn, c["schema_name"], m, obj)
                loading, kind = BUILDS[m["state"]]
                set_state(conn, m["id"], loading, load_kind=kind, load_after=0)
            elif m["state"] in LOADING and obj is not None:
                self._load(conn, c, m, obj, nominal)
            elif m["state"] in SYNCED and obj is not None:
                interval = float(m["config"].get("sf_polling_seconds") or 600)
                due = m["since_poll"] >= o.real(interval) or _owed_since_resume(c, m)
                if due and self.spend_api_calls(conn, c, 1):
                    poll(conn, c["schema_name"], m, obj)

    def _load(self, conn, c, m, obj: ObjectSpec, nominal: float) -> None:
        budget = self._budget(f"load:{m['id']}", self.options.load_rows_per_second, nominal)
        if budget <= 0 or not self.spend_api_calls(conn, c, 1):
            return
        if m["load_kind"] == "reload" and m["load_after"] == 0:
            with hcschema.hc_session(conn):
                conn.execute(
                    sql.SQL("TRUNCATE {}.{}").format(
                        sql.Identifier(c["schema_name"]), sql.Identifier(m["table_name"])
                    )
                )
        copied, last = upsert_records(
            conn, c["schema_name"], m, obj, after_seq=m["load_after"], limit=budget
        )
        if copied < budget:
            conn.execute(
                "UPDATE _hcsandbox.mapping SET state = 'DATA_SYNCED', state_since = now(), load_kind = NULL, "
                "load_after = 0, last_poll_at = state_since, "
                "times = times || jsonb_build_object('sf_poll', now()), updated_at = now() WHERE id = %s",
                (m["id"],),
            )
        else:
            conn.execute(
                "UPDATE _hcsandbox.mapping SET load_after = %s WHERE id = %s", (last, m["id"])
            )

    def _writer(self, conn, c: dict[str, Any], nominal: float) -> None:
        """HC's writer: send NEW trigger-log rows of read-write mappings to the org, then archive."""
        o = self.options
        schema = sql.Identifier(c["schema_name"])
        mappings = {
            m["table_name"]: m
            for m in state.rows(
                conn, "SELECT * FROM _hcsandbox.mapping WHERE connection_id = %s", (c["id"],)
            )
        }
        if not mappings and not hcschema.has_system_tables(conn, c["schema_name"]):
            return  # no schema until the first mapping (Assumptions.configure_creates_schema)
        writable = [t for t, m in mappings.items() if m["config"].get("access") == "read_write"]
        budget = self._budget(f"write:{c['id']}", o.writer_rows_per_second, nominal)
        backlog = conn.execute(
            sql.SQL(
                "SELECT count(*) FROM {}._trigger_log WHERE state IN ('NEW', 'PENDING') AND table_name = ANY(%s)"
            ).format(schema),
            (writable,),
        ).fetchone()[0]
        batch = []
        if budget > 0 and backlog and self.spend_api_calls(conn, c, 1):
            batch = state.rows(
                conn,
                sql.SQL(
                    "SELECT id, action, table_name, record_id, sfid, "
                    'hstore_to_json("values"::hstore) AS vals FROM {}._trigger_log '
                    "WHERE state = 'NEW' AND table_name = ANY(%s) AND created_at <= now() - {} "
                    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                ).format(schema, seconds(o.real(o.writer_latency_seconds))),
                (writable, budget),
            )
        for entry in batch:
            m = mappings[entry["table_name"]]
            obj = self.object(conn, m["object_name"])
            outcome, message = self._write_one(conn, c["schema_name"], entry, obj)
            conn.execute(
                sql.SQL(
                    "UPDATE {}._trigger_log SET state = %s, sf_message = %s, sf_result = %s, "
                    "processed_at = now(), processed_tx = txid_current(), updated_at = now() WHERE id = %s"
                ).format(schema),
                (outcome, message, 0 if outcome == "SUCCESS" else 1, entry["id"]),
            )
        # Processed rows, and rows HC never sends (READONLY, IGNORE), move to the archive.
        cols = sql.SQL(
            "id, txid, created_at, updated_at, processed_at, processed_tx, state, action, table_name, "
            'record_id, sfid, old, "values", sf_result, sf_message'
        )
        conn.execute(
            sql.SQL(
                "WITH moved AS (DELETE FROM {s}._trigger_log WHERE state IN ('SUCCESS', 'FAILED', 'READONLY', "
                "'IGNORE') AND created_at <= now() - {lat} RETURNING {cols}) "
                "INSERT INTO {s}._trigger_log_archive ({cols}) SELECT {cols} FROM moved"
            ).format(s=schema, cols=cols, lat=seconds(o.real(o.writer_latency_seconds))),
        )
        busy = backlog > len(batch) or bool(batch)
        new_state = "POLLING_DB_CHANGES" if busy else "IDLE"
        if batch:
            conn.execute(
                "UPDATE _hcsandbox.connection SET last_write_activity = now() WHERE id = %s",
                (c["id"],),
            )
        if new_state != c["state"]:
            conn.execute(
                "UPDATE _hcsandbox.connection SET state = %s WHERE id = %s AND state = %s",
                (new_state, c["id"], c["state"]),
            )

    def _write_one(
        self, conn, schema: str, entry: dict[str, Any], obj: ObjectSpec | None
    ) -> tuple[str, str | None]:
        table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(entry["table_name"]))
        if obj is None:
            return "FAILED", "INVALID_TYPE: sObject type is not supported"
        if self.rng.random() < self.options.write_failure_rate:
            message = "FIELD_CUSTOM_VALIDATION_EXCEPTION: rejected by a validation rule (simulated)"
            self._mark_row(conn, table, entry["record_id"], "FAILED", message)
            return "FAILED", message
        values = entry["vals"] or {}
        data: dict[str, Any] = {}
        for column, value in values.items():
            f = _field_for_column(obj, column)
            if f is None:
                continue
            if f.name in ("Id", "IsDeleted", "SystemModstamp"):
                continue
            data[f.name] = field_value_json(f, value)
        action = entry["action"]
        sfid = entry["sfid"]
        if action == "INSERT":
            sfid = new_sfid(conn, obj)
            conn.execute(
                "INSERT INTO _hcsandbox.sf_record (object_name, sfid, data) VALUES (%s, %s, %s)",
                (obj.name, sfid, Jsonb(data)),
            )
            with hcschema.hc_session(conn):
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET sfid = %s, _hc_lastop = 'INSERTED', _hc_err = NULL WHERE id = %s"
                    ).format(table),
                    (sfid, entry["record_id"]),
                )
            return "SUCCESS", None
        if sfid is None:
            sfid = conn.execute(
                sql.SQL("SELECT sfid FROM {} WHERE id = %s").format(table), (entry["record_id"],)
            ).fetchone()
            sfid = sfid[0] if sfid else None
        if sfid is None:
            message = "ENTITY_IS_DELETED: record has no Salesforce Id"
            return "FAILED", message
        if action == "UPDATE":
            done = conn.execute(
                "UPDATE _hcsandbox.sf_record SET data = data || %s, systemmodstamp = now() "
                "WHERE object_name = %s AND sfid = %s AND NOT isdeleted",
                (Jsonb(data), obj.name, sfid),
            ).rowcount
            if not done:
                message = "ENTITY_IS_DELETED: entity is deleted"
                self._mark_row(conn, table, entry["record_id"], "FAILED", message)
                return "FAILED", message
            self._mark_row(conn, table, entry["record_id"], "UPDATED", None)
            return "SUCCESS", None
        conn.execute(
            "UPDATE _hcsandbox.sf_record SET isdeleted = true, systemmodstamp = now() WHERE object_name = %s AND sfid = %s",
            (obj.name, sfid),
        )
        return "SUCCESS", None

    @staticmethod
    def _mark_row(conn, table, record_id, lastop: str, err: str | None) -> None:
        with hcschema.hc_session(conn):
            conn.execute(
                sql.SQL("UPDATE {} SET _hc_lastop = %s, _hc_err = %s WHERE id = %s").format(table),
                (lastop, Jsonb({"message": err}) if err else None, record_id),
            )

    # -- Salesforce -----------------------------------------------------------------------
    def spend_api_calls(self, conn, c: dict[str, Any], calls: int) -> bool:
        """Count Salesforce API calls against the org's daily limit (reset at UTC midnight).

        Over the limit, Salesforce answers REQUEST_LIMIT_EXCEEDED: loads, polls and writes stop
        until the next day, and HC raises a notification once.
        """
        used = state.get_setting(conn, "org_api_usage", {}) or {}
        day = conn.execute("SELECT (now() AT TIME ZONE 'utc')::date::text").fetchone()[0]
        count = used.get("count", 0) if used.get("day") == day else 0
        notified = used.get("notified", []) if used.get("day") == day else []
        if count + calls > self.options.org_api_daily_limit:
            if str(c["id"]) not in notified:
                conn.execute(
                    "INSERT INTO _hcsandbox.notification (connection_id, event_type, message) VALUES (%s, %s, %s)",
                    (
                        c["id"],
                        "mapping-error",
                        "REQUEST_LIMIT_EXCEEDED: the org's daily API request limit is used up",
                    ),
                )
                notified = [*notified, str(c["id"])]
                state.put_setting(
                    conn, "org_api_usage", {"day": day, "count": count, "notified": notified}
                )
            return False
        state.put_setting(
            conn, "org_api_usage", {"day": day, "count": count + calls, "notified": notified}
        )
        return True

    def _org_changes(self, conn, nominal: float) -> None:
        # At most a few hundred changes a tick, so a high speed cannot starve the other parts.
        n = min(self._budget("org", self.options.org_changes_per_second, nominal), 200)
        if n <= 0:
            return
        prefixes = _prefixes(conn)
        objects = state.rows(
            conn,
            "SELECT o.name, o.spec, (SELECT max(seq) FROM _hcsandbox.sf_record r WHERE r.object_name = o.name) AS top "
            "FROM _hcsandbox.sf_object o",
        )
        objects = [o for o in objects if o["top"]]
        if not objects:
            return
        for _ in range(n):
            o = self.rng.choice(objects)
            obj = ObjectSpec.model_validate(o["spec"])
            if self.rng.random() < 0.1:
                count = conn.execute(
                    "SELECT count(*) FROM _hcsandbox.sf_record WHERE object_name = %s", (obj.name,)
                ).fetchone()[0]
                generate_records(conn, obj, 1, prefixes, start=count + 1, fresh=True)
                continue
            # External ids are keys other systems hold: the org's own edits leave them alone.
            editable = [
                f for f in obj.fields if f.type in ("string", "textarea") and not f.external_id
            ]
            if not editable:
                continue
            f = self.rng.choice(editable)
            self._edits += 1
            value = f"{f.name} edit {self._edits}"[: f.length]
            conn.execute(
                "UPDATE _hcsandbox.sf_record SET data = jsonb_set(data, %s, to_jsonb(%s::text)), systemmodstamp = now() "
                "WHERE object_name = %s AND seq = (SELECT seq FROM _hcsandbox.sf_record WHERE object_name = %s "
                "AND seq >= %s ORDER BY seq LIMIT 1)",
                ([f.name], value, obj.name, obj.name, self.rng.randint(1, o["top"])),
            )


# -- shared by the simulator, the API and the scenario loader ------------------------------
def ensure_schema(conn, schema: str) -> None:
    """The connection's schema with HC's system tables, unless they are there already."""
    if not hcschema.has_system_tables(conn, schema):
        hcschema.install_prerequisites(conn)
        hcschema.create_system_tables(conn, schema)


def remove_mapping(conn, schema: str | None, m: dict[str, Any], *, drop_table: bool) -> None:
    """Delete a mapping: drop its table, or keep it with HC's triggers and functions removed.
    Its id is remembered, for a repeated DELETE (Assumptions.delete_repeat_status).

    Raises DependentObjectsStillExist (nothing changed) if the table to drop has dependents.
    """
    if schema:
        exists = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
            (schema, m["table_name"]),
        ).fetchone()
        if exists and drop_table:
            with conn.transaction():
                hcschema.drop_mapped_table(conn, schema, m["table_name"])
        elif exists:
            hcschema.drop_hc_objects(conn, schema, m["table_name"])
    conn.execute("DELETE FROM _hcsandbox.mapping WHERE id = %s", (m["id"],))
    conn.execute(
        "INSERT INTO _hcsandbox.deleted_mapping (id, connection_id) VALUES (%s, %s) "
        "ON CONFLICT (id) DO NOTHING",
        (m["id"], m["connection_id"]),
    )


# Schemas an import's connection block never moves a connection to.
_NOT_HC_SCHEMAS = ("public", "information_schema", state.SCHEMA)


def _move_to_named_schema(conn, c: dict[str, Any], name: Any) -> dict[str, Any]:
    """Assumptions.import_applies_connection_block: an export's connection.name is
    app:DB_KEY:schema; the connection moves to that schema (HC's tables are set up there)."""
    parts = name.split(":") if isinstance(name, str) else []
    schema = parts[2] if len(parts) == 3 else ""
    try:
        hcschema.check_name(schema)
    except ValueError:
        return c
    if schema == c["schema_name"] or schema in _NOT_HC_SCHEMAS or schema.startswith("pg_"):
        return c
    conn.execute(
        "UPDATE _hcsandbox.connection SET schema_name = %s WHERE id = %s", (schema, c["id"])
    )
    ensure_schema(conn, schema)
    return {**c, "schema_name": schema}


def _owed_since_resume(c: dict[str, Any], m: dict[str, Any]) -> bool:
    """A resumed connection catches up at once: a mapping owes a poll if it has not polled
    since the resume (only set when Assumptions.resume_polls_at_once)."""
    resumed = c.get("resumed_at")
    return resumed is not None and (m["last_poll_at"] is None or m["last_poll_at"] < resumed)


def _field_for_column(obj: ObjectSpec, column: str) -> FieldSpec | None:
    for f in obj.fields:
        if f.column == column:
            return f
    return None


def _prefixes(conn) -> dict[str, tuple[str, int]]:
    out = {}
    for r in state.rows(
        conn,
        "SELECT o.name, o.spec->>'key_prefix' AS prefix, "
        "(SELECT count(*) FROM _hcsandbox.sf_record r WHERE r.object_name = o.name) AS n FROM _hcsandbox.sf_object o",
    ):
        out[r["name"]] = (r["prefix"], r["n"])
    return out


def new_sfid(conn, obj: ObjectSpec) -> str:
    n = conn.execute("SELECT nextval('_hcsandbox.sfid_seq')").fetchone()[0]
    return f"{obj.key_prefix}Hw{n:010x}AAA"


def mapped_fields(m: dict[str, Any], obj: ObjectSpec) -> list[FieldSpec]:
    return [f for name in m["config"]["fields"] if (f := obj.field(name)) is not None]


def materialize(conn, schema: str, m: dict[str, Any], obj: ObjectSpec) -> None:
    """Create the mapping's table (or add the new columns) with HC's triggers and indexes."""
    fields = mapped_fields(m, obj)
    columns = {f.column: f.pg_type for f in fields if f.name != "Id"}
    indexes = {}
    for name, spec in (m["config"].get("indexes") or {}).items():
        f = obj.field(name)
        if f is not None and f.name != "Id":
            indexes[f.column] = bool((spec or {}).get("unique"))
    exists = conn.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s",
        (schema, m["table_name"]),
    ).fetchone()
    if exists:
        hcschema.add_columns(conn, schema, m["table_name"], columns)
    # Idempotent: on a kept table (a deleted mapping created again) it restores HC's triggers,
    # functions and indexes, and it sets the logger for the mapping's access.
    hcschema.create_mapped_table(
        conn,
        schema,
        m["table_name"],
        columns,
        access=m["config"].get("access", "read_only"),
        indexes=indexes,
    )


def upsert_records(
    conn,
    schema: str,
    m: dict[str, Any],
    obj: ObjectSpec,
    *,
    after_seq: int = 0,
    limit: int | None = None,
    since: Any = None,
    bulk: bool = False,
) -> tuple[int, int]:
    """Copy org records into the mapped table as HC does (not logged). Returns (count, last seq)."""
    fields = mapped_fields(m, obj)
    cols = [sql.Identifier(f.column) for f in fields] + [
        sql.Identifier("_hc_lastop"),
        sql.Identifier("_hc_err"),
    ]
    exprs = [column_expr(f) for f in fields] + [sql.Literal("SYNCED"), sql.NULL]
    updates = [sql.SQL("{0} = EXCLUDED.{0}").format(c) for c in cols if c != sql.Identifier("sfid")]
    where = [
        sql.SQL("r.object_name = %(obj)s"),
        sql.SQL("NOT r.isdeleted"),
        sql.SQL("r.seq > %(after)s"),
    ]
    if since is not None:
        where.append(sql.SQL("r.systemmodstamp > %(since)s"))
    stmt = sql.SQL(
        "WITH chunk AS (SELECT * FROM _hcsandbox.sf_record r WHERE {where} ORDER BY r.seq {limit}), "
        "ins AS (INSERT INTO {table} ({cols}) SELECT {exprs} FROM chunk r "
        "ON CONFLICT (sfid) DO UPDATE SET {updates}) "
        "SELECT count(*), coalesce(max(seq), 0) FROM chunk"
    ).format(
        where=sql.SQL(" AND ").join(where),
        limit=sql.SQL("LIMIT {}").format(sql.Literal(limit)) if limit else sql.SQL(""),
        table=sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(m["table_name"])),
        cols=sql.SQL(", ").join(cols),
        exprs=sql.SQL(", ").join(exprs),
        updates=sql.SQL(", ").join(updates),
    )
    with hcschema.hc_session(conn), bulk_session(conn) if bulk else contextlib.nullcontext():
        count, last = conn.execute(
            stmt, {"obj": obj.name, "after": after_seq, "since": since}
        ).fetchone()
    return count, last


@contextmanager
def bulk_session(conn) -> Iterator[None]:
    """Skip per-row triggers while a scenario builds its starting world, when allowed to.

    HC's status trigger and its log trigger's WHEN clause call get_xmlbinary(), which reads
    pg_settings: about 0.3 ms a row, so the demo's 41,000 rows would take many seconds. The
    starting world is history (rows HC loaded before the story begins): the load sets
    _hc_lastop itself and there are no app triggers or foreign keys yet. Loads while the sandbox
    runs never use this: they fire every trigger, HC's and the app's, as on Heroku.
    """
    if conn.info.parameter_status("is_superuser") != "on":
        yield
        return
    conn.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        if conn.info.transaction_status != TransactionStatus.INERROR:
            conn.execute("SET session_replication_role = DEFAULT")


def poll(conn, schema: str, m: dict[str, Any], obj: ObjectSpec) -> None:
    """Bring org changes since the last poll into the table, deletes included."""
    started = conn.execute("SELECT now()").fetchone()[0]
    since = m["last_poll_at"]
    upsert_records(conn, schema, m, obj, since=since)
    with hcschema.hc_session(conn):
        conn.execute(
            sql.SQL(
                "DELETE FROM {}.{} t USING _hcsandbox.sf_record r WHERE r.object_name = %s AND r.isdeleted "
                "AND r.systemmodstamp > %s AND t.sfid = r.sfid"
            ).format(sql.Identifier(schema), sql.Identifier(m["table_name"])),
            (obj.name, since),
        )
    conn.execute(
        "UPDATE _hcsandbox.mapping SET last_poll_at = %s, times = times || jsonb_build_object('sf_poll', %s::timestamptz) "
        "WHERE id = %s",
        (started, started, m["id"]),
    )


def set_state(conn, mapping_id, new_state: str, description: str = "OK", **extra: Any) -> None:
    assignments = [
        sql.SQL("state = %s, state_description = %s, state_since = now(), updated_at = now()")
    ]
    params: list[Any] = [new_state, description]
    for key, value in extra.items():
        assignments.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
        params.append(value)
    conn.execute(
        sql.SQL("UPDATE _hcsandbox.mapping SET {} WHERE id = %s").format(
            sql.SQL(", ").join(assignments)
        ),
        [*params, mapping_id],
    )


REQUIRED_FIELDS = ("Id", "IsDeleted", "SystemModstamp")


def with_required_fields(config: dict[str, Any], obj: ObjectSpec | None) -> dict[str, Any]:
    """HC maps Id, IsDeleted and SystemModstamp on every mapping (when the object has them) and
    indexes SystemModstamp, whatever the request asked; the dashboard cannot remove them either."""
    config = {k: v for k, v in config.items() if k not in ("revision", "applied_at")}
    fields = dict(config.get("fields") or {})
    for name in REQUIRED_FIELDS:
        if name not in fields and (obj is None or obj.field(name) is not None):
            fields[name] = {}
    indexes = dict(config.get("indexes") or {})
    indexes.setdefault("Id", {"unique": True})
    if "SystemModstamp" in fields:
        indexes.setdefault("SystemModstamp", {"unique": False})
    return {**config, "fields": fields, "indexes": indexes}


def _object_spec(conn, name: str) -> ObjectSpec | None:
    found = state.row(
        conn, "SELECT spec FROM _hcsandbox.sf_object WHERE lower(name) = lower(%s)", (name,)
    )
    return ObjectSpec.model_validate(found["spec"]) if found else None


def create_mapping(conn, connection_id, object_name: str, config: dict[str, Any]) -> dict[str, Any]:
    config = with_required_fields(config, _object_spec(conn, object_name))
    return state.row(
        conn,
        "INSERT INTO _hcsandbox.mapping (connection_id, object_name, table_name, config) "
        "VALUES (%s, %s, %s, %s) RETURNING *",
        (connection_id, object_name, hcschema.table_name_for(object_name), Jsonb(config)),
    )


def update_mapping_config(conn, m: dict[str, Any], config: dict[str, Any]) -> None:
    """A new config revision; added fields alter the table and load the new columns."""
    config = with_required_fields(config, _object_spec(conn, m["object_name"]))
    added = set(config.get("fields", {})) - set(m["config"].get("fields", {}))
    conn.execute(
        "UPDATE _hcsandbox.mapping SET config = %s, revision = revision + 1, applied_at = now(), "
        "updated_at = now() WHERE id = %s",
        (Jsonb(config), m["id"]),
    )
    if added and m["state"] not in ("INITIAL", "BAD_CONFIG"):
        set_state(conn, m["id"], "SCHEMA_CHANGED")
