"""The swap plan: what to move where, validated on its own and against the live system.

A plan is data. Its fingerprint covers its content and the live facts it rests on (connection
ids and mapping config revisions), so an approval given for one plan is void for another.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
OBJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
ADDON = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,59}$")
APP = re.compile(r"^[a-z][a-z0-9-]{1,29}$")
PROCESS = re.compile(r"^[a-zA-Z0-9_-]{1,30}$")
SWAP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
ENVIRONMENTS = ("production", "sandbox", "custom")


# Added to the plan after swaps were already stored (see `Plan.fingerprint`).
LATER_FIELDS = ("other_writers", "readers", "stale_sessions", "quiet_seconds")


def _check(pattern: re.Pattern[str], value: str, what: str, example: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not valid; expected something like {example}")
    return value


class Plan(BaseModel):
    """Everything the engine needs to know about one swap, as the operators agreed it."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    swap_id: str
    app: str
    old_addon: str = "hc1"
    old_schema: str = "salesforce"
    new_addon: str = "hc2"
    new_schema: str
    # Salesforce object -> fields to add to it. An empty list moves the mapping unchanged.
    mappings: dict[str, list[str]]
    roles: list[str] = Field(default_factory=list)
    set_database_search_path: bool = False
    process_types: list[str] = Field(default_factory=list)
    bot_process_types: list[str] = Field(default_factory=list)
    # Every other app attached to the database, as a person named it when saving the plan:
    # writers that stop-writes stops too (app -> process types), readers left running.
    other_writers: dict[str, list[str]] = Field(default_factory=dict)
    readers: list[str] = Field(default_factory=list)
    # Sessions of the plan's roles that logged in before the search_path changed keep the old
    # path (a pooler's server sessions outlive dyno restarts): end them before the app comes
    # back ("terminate"), or refuse to turn maintenance off until a person has ("refuse").
    stale_sessions: Literal["terminate", "refuse"] = "terminate"
    # No write from any app role for this long (real seconds) before drain starts.
    quiet_seconds: float = Field(default=10.0, ge=0, le=600)
    outage_start: datetime | None = None
    outage_end: datetime | None = None
    sf_environment: str = "production"
    sf_domain: str | None = None
    authorizer: str | None = None  # who opens the Salesforce link (a Slack user id or a name)
    created_by: str | None = None

    @field_validator("swap_id")
    @classmethod
    def _swap_id(cls, v: str) -> str:
        return _check(SWAP_ID, v, "swap id", "acme-2026-12-01")

    @field_validator("app")
    @classmethod
    def _app(cls, v: str) -> str:
        return _check(APP, v, "app", "acme-prod")

    @field_validator("old_addon", "new_addon")
    @classmethod
    def _addon(cls, v: str) -> str:
        return _check(ADDON, v, "add-on name", "hc2")

    @field_validator("old_schema", "new_schema")
    @classmethod
    def _schema(cls, v: str) -> str:
        _check(IDENT, v, "schema", "salesforce2")
        if v.startswith("pg_") or v in ("public", "information_schema", "heroku_ext"):
            raise ValueError(f"schema {v!r} is reserved; choose another name")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        return [_check(IDENT, r, "role", "acme_app") for r in v]

    @field_validator("process_types", "bot_process_types")
    @classmethod
    def _processes(cls, v: list[str]) -> list[str]:
        return [_check(PROCESS, p, "process type", "web") for p in v]

    @field_validator("other_writers")
    @classmethod
    def _other_writers(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for app, types in v.items():
            _check(APP, app, "app", "acme-admin")
            if not types:
                raise ValueError(f"name the process types of {app} to stop, e.g. {app}:web,worker")
            for t in types:
                _check(PROCESS, t, "process type", "worker")
        return v

    @field_validator("readers")
    @classmethod
    def _readers(cls, v: list[str]) -> list[str]:
        return [_check(APP, app, "app", "acme-reports") for app in v]

    @field_validator("mappings")
    @classmethod
    def _mappings(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        if not v:
            raise ValueError(
                "name at least one mapping to move, e.g. Account:Rating,NumberOfEmployees"
            )
        for obj, fields in v.items():
            _check(OBJECT, obj, "Salesforce object", "Account or Invoice__c")
            for f in fields:
                _check(OBJECT, f, f"field of {obj}", "Rating or Preferred_Channel__c")
        return v

    @field_validator("sf_environment")
    @classmethod
    def _env(cls, v: str) -> str:
        if v not in ENVIRONMENTS:
            raise ValueError(f"sf_environment must be one of {', '.join(ENVIRONMENTS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Plan:
        if self.new_schema == self.old_schema:
            raise ValueError("new_schema must differ from old_schema")
        if self.new_addon == self.old_addon:
            raise ValueError("new_addon must differ from old_addon")
        both = set(self.other_writers) & set(self.readers)
        if both:
            raise ValueError(f"an app is a writer or a reader, not both: {', '.join(sorted(both))}")
        if self.app in self.other_writers or self.app in self.readers:
            raise ValueError(f"{self.app} is the swapped app: its writers are process_types")
        mine = set(self.process_types) & set(self.bot_process_types)
        if mine:
            raise ValueError(f"never scale the bot's own process types: {', '.join(sorted(mine))}")
        if self.sf_environment == "custom" and not self.sf_domain:
            raise ValueError("sf_domain is required when sf_environment is custom")
        if self.outage_start and self.outage_end and self.outage_end <= self.outage_start:
            raise ValueError("outage_end must be after outage_start")
        return self

    @property
    def tables(self) -> list[str]:
        """The Postgres tables of the moved mappings (HC lower-cases Salesforce names)."""
        return [obj.lower() for obj in self.mappings]

    @property
    def objects(self) -> list[str]:
        return list(self.mappings)

    def fingerprint(self, live_facts: dict[str, Any] | None = None) -> str:
        """A short digest of the plan and the live facts it rests on."""
        # Fields added after plans were first stored count only once set: a plan saved before
        # them (and the approvals bound to it) keeps its fingerprint across an upgrade.
        later = {
            k
            for k in LATER_FIELDS
            if getattr(self, k) == type(self).model_fields[k].get_default(call_default_factory=True)
        }
        body = {
            "plan": self.model_dump(mode="json", exclude={"created_by", *later}),
            "live": live_facts or {},
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
        return digest[:12]


def parse_mappings(text: str) -> dict[str, list[str]]:
    """`Account:Rating,NumberOfEmployees;Contact:Phone;Case` into {object: [fields]}."""
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        obj, _, fields = part.partition(":")
        out[obj.strip()] = [f.strip() for f in fields.split(",") if f.strip()]
    return out


def parse_apps(text: str) -> dict[str, list[str]]:
    """`acme-admin:web,worker;acme-jobs:worker` into {app: [process types]}."""
    out: dict[str, list[str]] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        app, _, types = part.partition(":")
        out[app.strip()] = [t.strip() for t in types.split(",") if t.strip()]
    return out


def format_mappings(mappings: dict[str, list[str]]) -> str:
    return ";".join(
        f"{obj}:{','.join(fields)}" if fields else obj for obj, fields in mappings.items()
    )
