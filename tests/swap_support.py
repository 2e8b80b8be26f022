"""Test support for the swap engine: an engine on the sandbox and real Redis, and a scripted
'person' who does what the bot asks (opens the authorization link, confirms settings)."""

from __future__ import annotations

import threading
import time

import redis
import requests

from swapbot.heroku import ConnectClient, PlatformClient, RetryPolicy
from swapbot.sandbox.scenarios import role_names
from swapbot.swap.engine import Engine
from swapbot.swap.events import Emitter, Event
from swapbot.swap.live import Live
from swapbot.swap.plan import Plan
from swapbot.swap.store import Store
from tests.conftest import REDIS_TEST_URL, TOKEN

OPERATOR, APPROVER, PERSON = "U0OPERATOR", "U0APPROVER", "U0PERSON"


def make_engine(sandbox, db_url: str, redis_prefix: str, **options) -> Engine:
    retry = RetryPolicy(
        max_attempts=8, base_delay=0.01, max_delay=0.05, sleep=lambda s: time.sleep(min(s, 0.05))
    )
    connect = ConnectClient(TOKEN, sandbox.central_url, retry=retry, timeout=(2, 5))
    platform = PlatformClient(TOKEN, sandbox.platform_url, retry=retry, timeout=(2, 5))
    store = Store(redis.Redis.from_url(REDIS_TEST_URL), redis_prefix)

    def live_factory(plan: Plan, emitter: Emitter, dry_run: bool) -> Live:
        return Live(plan, connect, platform, db_url, emitter, dry_run=dry_run)

    defaults = {
        "poll_interval": 0.05,
        "in_flight_grace": 0.5,
        "approvers": {APPROVER},
        "lease_ttl": 10.0,
        "timeout_scale": 0.02,
        "clients": (connect, platform),
    }
    return Engine(store, live_factory, **{**defaults, **options})


def demo_plan(db_name: str, **changes) -> Plan:
    fields = {
        "swap_id": "acme-test",
        "app": "acme-prod",
        "old_addon": "hc1",
        "old_schema": "salesforce",
        "new_addon": "hc2",
        "new_schema": "salesforce2",
        "mappings": {"Account": ["Rating"], "Contact": ["Phone"]},
        "roles": [role_names(db_name)[0]],
        "process_types": ["web", "worker", "clock"],
        "authorizer": PERSON,
        "created_by": OPERATOR,
    }
    return Plan(**{**fields, **changes})


class Person:
    """Does what the bot asks a person to do, as soon as it is asked (in a thread)."""

    def __init__(self, engine: Engine, sandbox):
        self.engine, self.sandbox = engine, sandbox
        self.asked: list[Event] = []
        self._unsubscribe = engine.emitter.subscribe(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.kind != "step.waiting" or event.data.get("person") is None:
            return
        self.asked.append(event)
        threading.Thread(target=self._act, args=(event,), daemon=True).start()

    def _act(self, event: Event) -> None:
        if event.step == "authorize" and event.data.get("link"):
            requests.get(
                event.data["link"], params={"username": "integration-hc2@acme.example"}, timeout=5
            )
        elif event.step == "settings":
            self.engine.confirm("settings", PERSON)
        elif event.step in ("prepare-objects", "cutover-objects"):
            self.engine.confirm("objects", PERSON)
        elif event.step == "abort":
            for obj in self.engine.current_plan().mappings:
                requests.post(
                    f"{self.sandbox.base_url}/_sandbox/connections/hc2/mappings/{obj}/abort",
                    timeout=5,
                )

    def stop(self) -> None:
        self._unsubscribe()
