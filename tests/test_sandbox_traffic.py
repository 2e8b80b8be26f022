"""The sandbox plays the two set-ups that break "stop one app, restart its dynos": a database
attached to a second app that writes, and server-side connection pooling whose sessions outlive
dyno restarts. These are the traps themselves, without swapbot: they must be real here for the
swap's tests to mean anything."""

from __future__ import annotations

import time

import pytest
from psycopg import sql

from swapbot.heroku import PlatformClient
from swapbot.sandbox.scenarios import role_names
from swapbot.testing.services import TOKEN, wait_until


@pytest.fixture
def shared(sandbox_factory):
    sandbox = sandbox_factory("shared-db", org_changes_per_second=0.0)
    return sandbox, PlatformClient(TOKEN, sandbox.platform_url)


def writes_after(sandbox, app: str, mark: int, at_least: int = 3):
    """Wait for `at_least` writes of `app` after the first `mark` writes; return them."""
    return wait_until(
        lambda: (lambda w: w if len(w) >= at_least else None)(sandbox.traffic.log[mark:]),
        timeout=20,
        what=f"writes of {app}",
    )


def test_the_database_is_attached_to_both_apps_and_to_the_pooler(shared):
    _, platform = shared
    mine = {a.name: a for a in platform.app_attachments("acme-prod")}
    assert {"DATABASE", "DATABASE_CONNECTION_POOL", "HC1"} <= set(mine)
    assert mine["DATABASE_CONNECTION_POOL"].pooler and not mine["DATABASE"].pooler
    everyone = platform.addon_attachments(mine["DATABASE"].addon_id)
    assert sorted((a.app_name, a.name) for a in everyone) == [
        ("acme-admin", "DATABASE"),
        ("acme-prod", "DATABASE"),
        ("acme-prod", "DATABASE_CONNECTION_POOL"),
    ]
    assert "DATABASE_CONNECTION_POOL_URL" in platform.config_vars("acme-prod")


def test_a_second_app_keeps_writing_while_the_first_is_stopped(shared):
    sandbox, platform = shared
    writes_after(sandbox, "acme-admin", 0)
    platform.set_maintenance("acme-prod", True)
    platform.update_formation(
        "acme-prod", [{"type": t, "quantity": 0} for t in ("web", "worker", "clock")]
    )
    wait_until(lambda: not platform.dynos("acme-prod"), what="acme-prod's dynos to stop")
    mark = len(sandbox.traffic.log)
    later = writes_after(sandbox, "acme-admin", mark)
    assert {w.app for w in later} == {"acme-admin"}  # acme-prod stopped, acme-admin did not
    platform.update_formation("acme-admin", [{"type": "worker", "quantity": 0}])
    wait_until(
        lambda: not [d for d in platform.dynos("acme-admin") if d.type == "worker"],
        what="acme-admin's worker to stop",
    )
    mark = len(sandbox.traffic.log)
    time.sleep(1.0)
    assert sandbox.traffic.log[mark:] == []


def test_pooled_sessions_keep_the_old_path_across_dyno_restarts(shared, db, db_name):
    """After the role's search_path moves to a new schema and the app's dynos restart, writes
    through the pool still land in the old schema; once its sessions are ended they move."""
    sandbox, platform = shared
    role = role_names(db_name)[0]
    db.execute("CREATE SCHEMA salesforce2")
    for table in ("account", "contact", "case"):
        db.execute(
            sql.SQL(
                "CREATE TABLE salesforce2.{t} (LIKE salesforce.{t} INCLUDING ALL); "
                "INSERT INTO salesforce2.{t} SELECT * FROM salesforce.{t}"
            ).format(t=sql.Identifier(table))
        )
    db.execute(f'GRANT USAGE ON SCHEMA salesforce2 TO "{role}"')
    db.execute(f'GRANT ALL ON ALL TABLES IN SCHEMA salesforce2 TO "{role}"')
    writes_after(sandbox, "acme-prod", 0)
    db.execute(
        sql.SQL(
            "ALTER ROLE {} IN DATABASE {} SET search_path = salesforce2, salesforce, public"
        ).format(sql.Identifier(role), sql.Identifier(db_name))
    )
    platform.restart_all_dynos("acme-prod")
    platform.restart_all_dynos("acme-admin")
    wait_until(
        lambda: all(
            d.state == "up" for d in platform.dynos("acme-prod") + platform.dynos("acme-admin")
        ),
        what="the dynos to be up again",
    )
    mark = len(sandbox.traffic.log)
    later = writes_after(sandbox, "acme-prod", mark, at_least=8)
    pooled = [w for w in later if w.app == "acme-prod"]
    assert pooled and {w.schema for w in pooled} == {"salesforce"}  # the trap
    admin = [w for w in later if w.app == "acme-admin"]
    assert admin and {w.schema for w in admin} == {"salesforce2"}  # a session per dyno moved
    ended = db.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = 'pgbouncer'"
    ).fetchone()[0]
    assert ended >= 1
    mark = len(sandbox.traffic.log)
    wait_until(
        lambda: (
            [w for w in sandbox.traffic.log[mark:] if w.app == "acme-prod"][-3:]
            if len([w for w in sandbox.traffic.log[mark:] if w.app == "acme-prod"]) >= 3
            else None
        ),
        timeout=20,
        what="pooled writes after the sessions were ended",
    )
    fresh = [w for w in sandbox.traffic.log[mark:] if w.app == "acme-prod"][1:]
    assert {w.schema for w in fresh} == {"salesforce2"}
