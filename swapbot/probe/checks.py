"""Probe checks as data: each settles one assumption of swapbot/heroku/assumptions.py.

A check is a function of the probe's context that returns what it saw (`Seen`); the runner adds
the key, the kind, the evidence and the time. `kind` says whether it only reads ("read": safe on
a production connection) or changes things ("change": only on a scratch app).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from swapbot.heroku import ConnectClient, ConnectionRef, PlatformClient
from swapbot.probe.recorder import Recorder
from swapbot.probe.results import Kind, Verdict


@dataclass(frozen=True)
class Seen:
    verdict: Verdict
    observed: str
    variant: str | None = None


def confirmed(observed: str, variant: str | None = None) -> Seen:
    return Seen("confirmed", observed, variant)


def contradicted(observed: str, variant: str | None = None) -> Seen:
    return Seen("contradicted", observed, variant)


def unknown(observed: str, variant: str | None = None) -> Seen:
    return Seen("unknown", observed, variant)


@dataclass
class Context:
    """What a check may use. `connect` and `platform` are the clients; every exchange they
    have while the probe runs is recorded as evidence. `hc_json` and `platform_json` read an
    answer as Heroku sent it, for checks about its exact shape."""

    connect: ConnectClient
    platform: PlatformClient
    app: str
    addon: str | None
    recorder: Recorder
    sleep: Callable[[float], None] = time.sleep
    # Longest a check waits for something Heroku does later (a poll, a state).
    wait_seconds: float = 120.0
    # Scratch runs only: the database URL of the scratch app (never printed).
    database_url: str | None = field(default=None, repr=False)
    # Shared between checks of one run (the connection found, the add-on created...).
    state: dict[str, Any] = field(default_factory=dict)
    _ref: ConnectionRef | None = None

    @property
    def found_ref(self) -> ConnectionRef | None:
        """The connection, once a check has found it (None before)."""
        return self._ref

    @property
    def hc_session(self) -> requests.Session:
        return self.connect.session

    def ref(self) -> ConnectionRef:
        if self._ref is None:
            self._ref = self.connect.find_connection(self.app, self.addon)
        return self._ref

    def use_ref(self, ref: ConnectionRef) -> None:
        self._ref = ref

    def hc_json(self, url: str, **params: str) -> Any:
        """GET `url` on Heroku Connect: the JSON answer as sent."""
        return self.connect.get_json(url, params=params or None)

    def platform_json(self, path: str) -> Any:
        """GET `path` on the Platform API: the JSON answer as sent."""
        return self.platform.get_json(self.platform.base_url + path)


CheckFn = Callable[[Context], Seen]


@dataclass(frozen=True)
class ProbeCheck:
    key: str
    kind: Kind
    run: CheckFn
    # One line: what the check does, for `swapbot probe --list` and the docs.
    does: str
