"""Scenarios: the starting world of a sandbox, as data.

A scenario names the app, its formation, the org's objects and record counts, the existing HC
connections with their mappings, and extras (unmanaged objects, a pre-filled trigger log).
`load()` builds that world in the database. Tests and benchmarks add their own with `register`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from swapbot.sandbox import api, hcschema, state, unmanaged
from swapbot.sandbox.org import FieldSpec, ObjectSpec, generate_records, standard_fields
from swapbot.sandbox.sim import _prefixes, materialize, upsert_records

log = logging.getLogger(__name__)


class MappingSpec(BaseModel):
    object_name: str
    access: Literal["read_only", "read_write"] = "read_only"
    fields: list[str]
    indexes: dict[str, bool] = Field(default_factory=dict)  # field -> unique
    upsert_field: str | None = None
    sf_polling_seconds: int = 600

    def config(self) -> dict:
        config = {
            "access": self.access,
            "sf_notify_enabled": False,
            "sf_polling_seconds": self.sf_polling_seconds,
            "sf_max_daily_api_calls": 30000,
            "fields": {f: {} for f in ["Id", "IsDeleted", "SystemModstamp", *self.fields] if f},
            "indexes": {"Id": {"unique": True}, "SystemModstamp": {"unique": False}}
            | {k: {"unique": v} for k, v in self.indexes.items()},
        }
        if self.upsert_field:
            config["upsert_field"] = self.upsert_field
        return config


class ConnectionSpec(BaseModel):
    addon_name: str
    schema_name: str
    plan: str = "herokuconnect:enterprise"
    sf_username: str = "integration@acme.example"
    poll_db_no_merge: bool = True
    mappings: list[MappingSpec]


class ProcessSpec(BaseModel):
    type: str
    quantity: int
    size: str = "standard-1X"
    command: str = ""


class AttachedAppSpec(BaseModel):
    """Another app the database is attached to (a worker app, an admin app), with the same
    credentials: its own formation and dynos, its own maintenance mode."""

    name: str
    formation: list[ProcessSpec]


class WriterSpec(BaseModel):
    """An app that writes through its dynos (sandbox/traffic.py): through which process types,
    how fast, and whether through the database's server-side pool or a session per dyno."""

    app: str
    process_types: list[str] = Field(default_factory=lambda: ["worker"])
    per_second: float = Field(default=5.0, gt=0)
    pooled: bool = False
    pool_size: int = Field(default=3, ge=1)


class Scenario(BaseModel):
    name: str
    app: str = "acme-prod"
    region: str = "us"
    objects: list[ObjectSpec]
    connections: list[ConnectionSpec]
    formation: list[ProcessSpec]
    unmanaged_objects: bool = False
    trigger_log_rows: int = 0
    trigger_log_archive_rows: int = 0
    # Other apps on the same database, server-side pooling (a DATABASE_CONNECTION_POOL
    # attachment on `app`), and the apps the sandbox makes write through their dynos.
    attached_apps: list[AttachedAppSpec] = Field(default_factory=list)
    connection_pooling: bool = False
    writers: list[WriterSpec] = Field(default_factory=list)


SCENARIOS: dict[str, Callable[[], Scenario]] = {}


def register(name: str) -> Callable[[Callable[[], Scenario]], Callable[[], Scenario]]:
    def add(factory: Callable[[], Scenario]) -> Callable[[], Scenario]:
        SCENARIOS[name] = factory
        return factory

    return add


def get(name: str) -> Scenario:
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return SCENARIOS[name]()


def f(name: str, type_: str = "string", **kw) -> FieldSpec:
    return FieldSpec(name=name, type=type_, **kw)


DEMO_OBJECTS = [
    ObjectSpec(
        name="Account",
        key_prefix="001",
        records=10_000,
        fields=[
            *standard_fields(),
            f("Name"),
            f("Industry", "picklist", length=40, values=["Energy", "Retail", "Banking", "Media"]),
            f("AnnualRevenue", "currency"),
            f("BillingCity", length=40),
            f("External_Key__c", length=36, external_id=True),
            f("NumberOfEmployees", "int"),
            f("Rating", "picklist", length=40, values=["Hot", "Warm", "Cold"]),
        ],
    ),
    ObjectSpec(
        name="Contact",
        key_prefix="003",
        records=15_000,
        fields=[
            *standard_fields(),
            f("FirstName", length=40),
            f("LastName", length=80),
            f("Email", "email", length=80),
            f("AccountId", "reference", references="Account"),
            f("External_Key__c", length=36, external_id=True),
            f("Phone", "phone", length=40),
            f("Preferred_Channel__c", "picklist", length=40, values=["Email", "Phone", "SMS"]),
        ],
    ),
    ObjectSpec(
        name="Opportunity",
        key_prefix="006",
        records=8_000,
        fields=[
            *standard_fields(),
            f("Name", length=120),
            f(
                "StageName",
                "picklist",
                length=40,
                values=["Prospecting", "Negotiation", "Closed Won", "Closed Lost"],
            ),
            f("Amount", "currency"),
            f("CloseDate", "date"),
            f("AccountId", "reference", references="Account"),
        ],
    ),
    ObjectSpec(
        name="Case",
        key_prefix="500",
        records=5_000,
        fields=[
            *standard_fields(),
            f("Subject"),
            f("Status", "picklist", length=40, values=["New", "Working", "Closed"]),
            f("Priority", "picklist", length=40, values=["High", "Medium", "Low"]),
            f("AccountId", "reference", references="Account"),
            f("ContactId", "reference", references="Contact"),
        ],
    ),
    ObjectSpec(
        name="Invoice__c",
        key_prefix="a01",
        records=3_000,
        fields=[
            *standard_fields(),
            f("Name", length=80),
            f("Account__c", "reference", references="Account"),
            f("Amount__c", "currency"),
            f("Status__c", "picklist", length=40, values=["Draft", "Sent", "Paid"]),
            f("Due_Date__c", "date"),
        ],
    ),
]

DEMO_MAPPINGS = [
    MappingSpec(
        object_name="Account",
        access="read_write",
        fields=[
            "CreatedDate",
            "Name",
            "Industry",
            "AnnualRevenue",
            "BillingCity",
            "External_Key__c",
        ],
        indexes={"External_Key__c": True},
        upsert_field="External_Key__c",
    ),
    MappingSpec(
        object_name="Contact",
        access="read_write",
        fields=["CreatedDate", "FirstName", "LastName", "Email", "AccountId", "External_Key__c"],
        indexes={"External_Key__c": True, "AccountId": False},
        upsert_field="External_Key__c",
    ),
    MappingSpec(
        object_name="Opportunity",
        fields=["CreatedDate", "Name", "StageName", "Amount", "CloseDate", "AccountId"],
    ),
    MappingSpec(
        object_name="Case",
        access="read_write",
        fields=["CreatedDate", "Subject", "Status", "Priority", "AccountId", "ContactId"],
    ),
    MappingSpec(
        object_name="Invoice__c",
        fields=["CreatedDate", "Name", "Account__c", "Amount__c", "Status__c", "Due_Date__c"],
    ),
]

DEMO_FORMATION = [
    ProcessSpec(type="web", quantity=2, size="standard-2X", command="gunicorn acme.wsgi"),
    ProcessSpec(type="worker", quantity=1, command="rq worker"),
    ProcessSpec(type="clock", quantity=1, command="python clock.py"),
]


@register("demo")
def demo() -> Scenario:
    """acme-prod: hc1 on schema salesforce with five mappings and every kind of unmanaged object."""
    return Scenario(
        name="demo",
        objects=DEMO_OBJECTS,
        connections=[
            ConnectionSpec(addon_name="hc1", schema_name="salesforce", mappings=DEMO_MAPPINGS)
        ],
        formation=DEMO_FORMATION,
        unmanaged_objects=True,
        trigger_log_rows=0,
    )


@register("small")
def small() -> Scenario:
    """The demo's shape at a hundredth of the rows, without unmanaged objects: quick for tests."""
    objects = [o.model_copy(update={"records": max(o.records // 100, 20)}) for o in DEMO_OBJECTS]
    return Scenario(
        name="small",
        objects=objects,
        connections=[
            ConnectionSpec(addon_name="hc1", schema_name="salesforce", mappings=DEMO_MAPPINGS)
        ],
        formation=DEMO_FORMATION,
    )


def many_mappings(count: int = 300, records: int = 20) -> Scenario:
    """A connection with `count` custom objects, for status rendering and Block Kit limits."""
    objects = [
        ObjectSpec(
            name=f"Obj{i:03d}__c",
            key_prefix=f"b{i:02x}"[-3:] if i < 256 else f"c{i - 256:02x}",
            records=records,
            fields=[*standard_fields(), f("Name", length=80), f("Value__c", "double")],
        )
        for i in range(count)
    ]
    mappings = [MappingSpec(object_name=o.name, fields=["Name", "Value__c"]) for o in objects]
    return Scenario(
        name=f"many-{count}",
        objects=objects,
        connections=[ConnectionSpec(addon_name="hc1", schema_name="salesforce", mappings=mappings)],
        formation=DEMO_FORMATION,
    )


register("many-mappings")(many_mappings)


def big_trigger_log(live: int = 100_000, archive: int = 1_000_000) -> Scenario:
    """The small demo with a trigger log of `live` rows and an archive of `archive` rows."""
    return small().model_copy(
        update={
            "name": "big-trigger-log",
            "trigger_log_rows": live,
            "trigger_log_archive_rows": archive,
        }
    )


register("big-trigger-log")(big_trigger_log)

POOLER_ATTACHMENT = "DATABASE_CONNECTION_POOL"
POOLER_NAMESPACE = "connection-pooling:default"


@register("shared-db")
def shared_db() -> Scenario:
    """The small demo on a database two apps write to: acme-admin (a web and a worker dyno,
    its worker writing) is attached to it too, and acme-prod's dynos write through Heroku
    Postgres's server-side pool, whose sessions outlive their restarts."""
    return small().model_copy(
        update={
            "name": "shared-db",
            "attached_apps": [
                AttachedAppSpec(
                    name="acme-admin",
                    formation=[
                        ProcessSpec(type="web", quantity=1, command="gunicorn admin:app"),
                        ProcessSpec(type="worker", quantity=1, command="rq worker"),
                    ],
                )
            ],
            "connection_pooling": True,
            "writers": [
                WriterSpec(app="acme-prod", process_types=["web", "worker"], pooled=True),
                WriterSpec(app="acme-admin", process_types=["worker"]),
            ],
        }
    )


# -- loading ------------------------------------------------------------------------------
def role_names(dbname: str) -> tuple[str, str]:
    """The app's role and a read-only role, named after the database so test databases coexist."""
    return f"{dbname}_app", f"{dbname}_readonly"


def reset(conn, scenario: Scenario) -> None:
    schemas = [c.schema_name for c in scenario.connections]
    for s in [*schemas, unmanaged.REPORTING_SCHEMA]:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s)))
    old = (
        state.rows(
            conn, "SELECT schema_name FROM _hcsandbox.connection WHERE schema_name IS NOT NULL"
        )
        if conn.execute("SELECT to_regclass('_hcsandbox.connection')").fetchone()[0]
        else []
    )
    # A removed add-on's schema stays behind (assumption remove-addon-keeps-schema): any schema
    # with Heroku Connect's `_hcmeta` was a connection's, and goes too.
    orphans = state.rows(
        conn,
        "SELECT n.nspname AS schema_name FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = '_hcmeta' AND c.relkind = 'r'",
    )
    for r in [*old, *orphans]:
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(r["schema_name"]))
        )
    conn.execute("DROP TABLE IF EXISTS public.app_order CASCADE")
    # A new world: swapbot's journal of swaps on the old one goes with it.
    conn.execute("DROP SCHEMA IF EXISTS swapbot CASCADE")
    state.drop(conn)


def load(database_url: str, scenario: Scenario) -> None:
    """Build the scenario's world in the database, replacing any earlier sandbox state."""
    with psycopg.connect(database_url) as conn:
        dbname = conn.info.dbname
        app_role, readonly_role = role_names(dbname)
        reset(conn, scenario)
        state.install(conn)
        hcschema.install_prerequisites(conn)
        state.put_setting(conn, "scenario", scenario.name)
        state.put_setting(conn, "organization_id", "00D5j000000AcmeAAA")
        conn.execute(
            "INSERT INTO _hcsandbox.app (name, region) VALUES (%s, %s)",
            (scenario.app, scenario.region),
        )
        conn.execute(
            "INSERT INTO _hcsandbox.config_var VALUES (%s, 'DATABASE_URL', %s)",
            (scenario.app, _public_url(database_url)),
        )
        database = state.row(
            conn,
            "INSERT INTO _hcsandbox.addon (name, app, service, plan, state) "
            "VALUES (%s, %s, 'heroku-postgresql', 'heroku-postgresql:standard-0', 'provisioned') "
            "RETURNING id",
            (f"postgresql-{scenario.app}-12345", scenario.app),
        )
        _attach(conn, database["id"], scenario.app, "DATABASE")
        _formation(conn, scenario.app, scenario.formation)
        for other in scenario.attached_apps:
            conn.execute(
                "INSERT INTO _hcsandbox.app (name, region) VALUES (%s, %s)",
                (other.name, scenario.region),
            )
            conn.execute(
                "INSERT INTO _hcsandbox.config_var VALUES (%s, 'DATABASE_URL', %s)",
                (other.name, _public_url(database_url)),
            )
            _attach(conn, database["id"], other.name, "DATABASE")
            _formation(conn, other.name, other.formation)
        if scenario.connection_pooling:
            _attach(conn, database["id"], scenario.app, POOLER_ATTACHMENT, POOLER_NAMESPACE)
            # The sandbox has no PgBouncer: the pool's URL logs in as the app's role straight
            # to the database, as a pooler's fresh server session would.
            conn.execute(
                "INSERT INTO _hcsandbox.config_var VALUES (%s, %s, %s)",
                (
                    scenario.app,
                    f"{POOLER_ATTACHMENT}_URL",
                    app_database_url(_public_url(database_url), app_role),
                ),
            )
        state.put_setting(conn, "writers", [w.model_dump() for w in scenario.writers])
        for obj in scenario.objects:
            conn.execute(
                "INSERT INTO _hcsandbox.sf_object VALUES (%s, %s)",
                (obj.name, Jsonb(obj.model_dump())),
            )
        prefixes = {o.name: (o.key_prefix, o.records) for o in scenario.objects}
        for obj in scenario.objects:
            generate_records(conn, obj, obj.records, prefixes)
        conn.execute("ANALYZE _hcsandbox.sf_record")
        for spec in scenario.connections:
            _load_connection(conn, scenario, spec)
        if scenario.unmanaged_objects:
            unmanaged.demo_objects(
                conn,
                schema=scenario.connections[0].schema_name,
                app_role=app_role,
                readonly_role=readonly_role,
            )
        _app_role(conn, dbname, app_role, [c.schema_name for c in scenario.connections])
        if scenario.trigger_log_rows or scenario.trigger_log_archive_rows:
            _fill_trigger_log(
                conn,
                scenario.connections[0],
                scenario.trigger_log_rows,
                scenario.trigger_log_archive_rows,
            )
        assert _prefixes(conn)  # the org is not empty


def _public_url(database_url: str) -> str:
    return database_url


def _attach(conn, addon, app: str, name: str, namespace: str | None = None) -> None:
    conn.execute(
        "INSERT INTO _hcsandbox.attachment (addon, app, name, namespace) VALUES (%s, %s, %s, %s)",
        (addon, app, name, namespace),
    )


def _formation(conn, app: str, formation: list[ProcessSpec]) -> None:
    for p in formation:
        conn.execute(
            "INSERT INTO _hcsandbox.formation (app, type, quantity, size, command) "
            "VALUES (%s, %s, %s, %s, %s)",
            (app, p.type, p.quantity, p.size, p.command),
        )
        for num in range(1, p.quantity + 1):
            conn.execute(
                "INSERT INTO _hcsandbox.dyno (app, type, num, state, size) "
                "VALUES (%s, %s, %s, 'up', %s)",
                (app, p.type, num, p.size),
            )


def _load_connection(conn, scenario: Scenario, spec: ConnectionSpec) -> None:
    addon = state.row(
        conn,
        "INSERT INTO _hcsandbox.addon (name, app, service, plan, state) VALUES (%s, %s, 'herokuconnect', %s, "
        "'provisioned') RETURNING id",
        (spec.addon_name, scenario.app, spec.plan),
    )
    _attach(conn, addon["id"], scenario.app, spec.addon_name.upper().replace("-", "_"))
    sf_info = {
        "username": spec.sf_username,
        "organization_id": "00D5j000000AcmeAAA",
        "environment": "production",
        "domain": None,
        "api_version": "62.0",
    }
    features = api.default_features() | {"poll_db_no_merge": spec.poll_db_no_merge}
    c = state.row(
        conn,
        "INSERT INTO _hcsandbox.connection (addon_id, app, schema_name, db_key, state, features, sf_info, auth_updated) "
        "VALUES (%s, %s, %s, 'DATABASE_URL', 'IDLE', %s, %s, now()) RETURNING *",
        (addon["id"], scenario.app, spec.schema_name, Jsonb(features), Jsonb(sf_info)),
    )
    hcschema.create_system_tables(conn, spec.schema_name, org_id=sf_info["organization_id"])
    objects = {o.name: o for o in scenario.objects}
    for ms in spec.mappings:
        m = state.row(
            conn,
            "INSERT INTO _hcsandbox.mapping (connection_id, object_name, table_name, config, state, last_poll_at) "
            "VALUES (%s, %s, %s, %s, 'DATA_SYNCED', now()) RETURNING *",
            (c["id"], ms.object_name, hcschema.table_name_for(ms.object_name), Jsonb(ms.config())),
        )
        obj = objects[ms.object_name]
        materialize(conn, spec.schema_name, m, obj)
        upsert_records(conn, spec.schema_name, m, obj, bulk=True)
        conn.execute(
            sql.SQL("ANALYZE {}.{}").format(
                sql.Identifier(spec.schema_name), sql.Identifier(m["table_name"])
            )
        )


def _app_role(conn, dbname: str, role: str, schemas: list[str]) -> None:
    """The app's login role, whose search_path reaches the mapped tables unqualified."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    if not exists:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    path = sql.SQL(", ").join([*(sql.Identifier(s) for s in schemas), sql.Identifier("public")])
    conn.execute(
        sql.SQL("ALTER ROLE {} IN DATABASE {} SET search_path = {}").format(
            sql.Identifier(role), sql.Identifier(dbname), path
        )
    )
    for s in schemas:
        ident = sql.Identifier(s)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ident, sql.Identifier(role)))
        conn.execute(
            sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA {} TO {}").format(
                ident, sql.Identifier(role)
            )
        )
        conn.execute(
            sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA {} TO {}").format(
                ident, sql.Identifier(role)
            )
        )
    conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(role)))
    conn.execute(
        sql.SQL("GRANT ALL ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(role))
    )
    conn.execute(
        sql.SQL("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {}").format(sql.Identifier(role))
    )


def _fill_trigger_log(conn, spec: ConnectionSpec, live: int, archive: int) -> None:
    """Pre-fill the trigger log as a busy HC connection would have it (for backlog benchmarks)."""
    s = sql.Identifier(spec.schema_name)
    tables = [
        hcschema.table_name_for(m.object_name) for m in spec.mappings if m.access == "read_write"
    ] or ["account"]
    conn.execute(
        sql.SQL(
            "INSERT INTO {}._trigger_log_archive (id, txid, created_at, updated_at, processed_at, state, action, "
            'table_name, record_id, sfid, "values", sf_result) '
            "SELECT g, g, now() - make_interval(secs => g * 2.5), now(), now() - make_interval(secs => g * 2.5), "
            "CASE WHEN g %% 500 = 0 THEN 'FAILED' ELSE 'SUCCESS' END, 'UPDATE', (%s::text[])[1 + g %% %s], g %% 1000 + 1, "
            'NULL, \'"name"=>"x"\', 0 FROM generate_series(1, %s) g'
        ).format(s),
        (tables, len(tables), archive),
    )
    conn.execute(
        sql.SQL(
            'INSERT INTO {}._trigger_log (id, txid, created_at, state, action, table_name, record_id, "values") '
            "SELECT %s + g, g, now() - make_interval(secs => (%s - g) * 0.1), "
            "CASE WHEN g %% 100 = 0 THEN 'FAILED' WHEN g > %s - 500 THEN 'NEW' ELSE 'SUCCESS' END, "
            "'UPDATE', (%s::text[])[1 + g %% %s], g %% 1000 + 1, '\"name\"=>\"x\"' FROM generate_series(1, %s) g"
        ).format(s),
        (archive, live, live, tables, len(tables), live),
    )
    # Archived rows were live once: live ids run on from the archive's, as on a real connection.
    conn.execute(
        sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), %s)").format(
            sql.Literal(f"{spec.schema_name}._trigger_log")
        ),
        (live + archive + 1,),
    )
    conn.execute(sql.SQL("ANALYZE {}._trigger_log").format(s))
    conn.execute(sql.SQL("ANALYZE {}._trigger_log_archive").format(s))


def stored_assumptions(database_url: str) -> dict | None:
    """The assumption flags a sandbox in this database last ran with (None: no sandbox here)."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('_hcsandbox.setting')").fetchone()[0] is None:
            return None
        return state.get_setting(conn, "assumptions", {})


def app_database_url(database_url: str, role: str) -> str:
    """The same database, connecting as the app's role (trust auth locally)."""
    parts = urlsplit(database_url)
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{role}@{host}{port}{parts.path}"
