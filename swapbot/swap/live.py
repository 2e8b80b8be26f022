"""The live system as the steps see it: Heroku Connect, the Platform API and the database.

One object per run, holding the clients. Reads go straight through; every change goes through
`change()`, which records it as a `call` event and, in a dry run, stops there. That is what makes
`--dry-run` print exactly the calls a real run would make while changing nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.abc import Params, QueryNoTemplate

from swapbot.heroku import (
    ConnectClient,
    Connection,
    ConnectionNotFound,
    ConnectionRef,
    PlatformClient,
)
from swapbot.heroku.probed import Plays, ProbeResults
from swapbot.swap.events import Emitter, Event
from swapbot.swap.journal import APPLICATION_NAME
from swapbot.swap.plan import Plan

T = TypeVar("T")
READ_REUSE_SECONDS = 0.1


class DryRun(Exception):
    """Raised inside a dry run where a step would go on to wait for a change it did not make."""


class Live:
    def __init__(
        self,
        plan: Plan,
        connect: ConnectClient,
        platform: PlatformClient,
        database_url: str,
        emitter: Emitter,
        *,
        dry_run: bool = False,
        authorized_page: str | None = None,
        probe: ProbeResults | None = None,
    ):
        self.plan = plan
        # What `swapbot probe` found on a real connection, and so what the steps play where
        # Heroku's behaviour is unconfirmed.
        self.use_probe(probe)
        # Where a person lands after the Salesforce login of `authorize` (HC's `next`).
        self.authorized_page = authorized_page
        self.connect = connect
        self.platform = platform
        self.database_url = database_url
        self.emitter = emitter
        self.dry_run = dry_run
        self._refs: dict[str, ConnectionRef] = {}
        self.guard: Callable[[], None] | None = None
        # One check reads the same connection several times within milliseconds; keep a read
        # for a moment. Any change clears it, so nothing stale is read after the bot acts.
        self._reads: dict[str, tuple[float, Connection]] = {}

    def use_probe(self, probe: ProbeResults | None) -> None:
        """Play what `swapbot probe` found (None: the documented guesses)."""
        self.probe = probe
        self.plays = Plays.from_results(probe)

    # -- changes ------------------------------------------------------------------------
    def change(self, description: str, action: Callable[[], T], **data: Any) -> T | None:
        """Make one change to the live system, announced first; in a dry run, only announced.
        `guard` (the engine's lease check) runs first and raises to stop the change."""
        if self.guard is not None and not self.dry_run:
            self.guard()
        self._reads.clear()
        self.emitter.emit(
            Event(
                kind="call",
                swap_id=self.plan.swap_id,
                message=description,
                data={**data, "dry_run": self.dry_run},
            )
        )
        if self.dry_run:
            return None
        return action()

    # -- Heroku Connect -------------------------------------------------------------------
    def ref(self, addon: str) -> ConnectionRef:
        if addon not in self._refs:
            if self.dry_run:
                # Linking (POST /auth) adds the user to the add-on's access list: a change.
                found = self.connect.discover(self.plan.app, resource_name=addon)
                if len(found) != 1:
                    raise ConnectionNotFound(self.plan.app, addon)  # linking would be a change
                self._refs[addon] = found[0]
            else:
                self._refs[addon] = self.connect.find_connection(self.plan.app, addon)
        return self._refs[addon]

    def connection(self, addon: str) -> Connection | None:
        """The connection of an add-on, or None when there is none (yet)."""
        cached = self._reads.get(addon)
        if cached and time.monotonic() - cached[0] < READ_REUSE_SECONDS:
            return cached[1]
        try:
            found = self.connect.get_connection(self.ref(addon))
        except ConnectionNotFound:
            return None
        self._reads[addon] = (time.monotonic(), found)
        return found

    def old(self) -> Connection:
        c = self.connection(self.plan.old_addon)
        if c is None:
            raise ConnectionNotFound(self.plan.app, self.plan.old_addon)
        return c

    def new(self) -> Connection | None:
        return self.connection(self.plan.new_addon)

    def forget_refs(self) -> None:
        self._refs.clear()

    # -- database -----------------------------------------------------------------------
    def db(self, **kwargs: Any) -> psycopg.Connection:
        # Named, so that the bot's own sessions are told apart from the app's.
        kwargs.setdefault("application_name", APPLICATION_NAME)
        return psycopg.connect(self.database_url, connect_timeout=10, **kwargs)

    def query(self, sql: QueryNoTemplate, params: Params | None = None) -> list[tuple[Any, ...]]:
        with self.db(autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()
