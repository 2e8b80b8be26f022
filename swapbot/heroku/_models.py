"""Typed views of what the Heroku Connect API v3 and the Heroku Platform API return.

Every model keeps fields it does not know (`extra="allow"`), so a field Heroku adds survives a
read-modify-write such as export -> filter -> import. States stay plain strings on the models;
the enums and groupings below are for comparisons, and an unknown state still parses.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = [
    "CONNECTION_ERROR_STATES",
    "CONNECTION_OK_STATES",
    "LOADING_STATES",
    "MAPPING_ERROR_STATES",
    "MAPPING_OK_STATES",
    "MAPPING_TEMPORARY_STATES",
    "SYNCED_STATES",
    "Addon",
    "App",
    "Check",
    "CheckResults",
    "Connection",
    "ConnectionRef",
    "ConnectionState",
    "Counts",
    "DiagnosedFailure",
    "Diagnosis",
    "DiscoveryPage",
    "Dyno",
    "ErrorList",
    "ExportDocument",
    "ExportMapping",
    "Formation",
    "FormationUpdate",
    "IndexSpec",
    "JsonValue",
    "LinkResult",
    "Mapping",
    "MappingConfig",
    "MappingState",
    "Notification",
    "SchemaDiff",
    "SchemaDiffMapping",
    "WriteError",
    "config_vars_from",
    "mapping_state_group",
    "resolve_url",
]


# A decoded JSON document, before it is checked against a model.
JsonValue: TypeAlias = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None


class _Model(BaseModel):
    # coerce_numbers_to_str: old HC responses used small integers as connection ids.
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


# --- states --------------------------------------------------------------------------------------
# As listed on https://devcenter.heroku.com/articles/connection-states-reference and
# https://devcenter.heroku.com/articles/mapping-states-reference, plus some states seen in the
# wild whose meaning nobody documents (assumption `unlisted-states`).


class ConnectionState(StrEnum):
    NEW = "NEW"
    NEED_AUTHENTICATION = "NEED_AUTHENTICATION"
    IDLE = "IDLE"
    POLLING_DB_CHANGES = "POLLING_DB_CHANGES"
    PAUSED = "PAUSED"
    RECOVERY = "RECOVERY"
    IMPORT_CONFIGURATION = "IMPORT_CONFIGURATION"
    BUSY = "BUSY"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    DB_UNAVAILABLE = "DB_UNAVAILABLE"
    TOO_MANY_ROWS = "TOO_MANY_ROWS"
    UNAUTHORIZED = "UNAUTHORIZED"
    HEROKU_UNAUTH = "HEROKU_UNAUTH"
    INACTIVE_ORG = "INACTIVE_ORG"
    SYSTEM_ON_ICE = "SYSTEM_ON_ICE"
    ICED = "ICED"


# django-heroku-connect counts these as healthy.
CONNECTION_OK_STATES = frozenset(
    {
        ConnectionState.IDLE,
        ConnectionState.POLLING_DB_CHANGES,
        ConnectionState.IMPORT_CONFIGURATION,
        ConnectionState.BUSY,
    }
)
CONNECTION_ERROR_STATES = frozenset(
    {
        ConnectionState.SYSTEM_ERROR,
        ConnectionState.DB_UNAVAILABLE,
        ConnectionState.TOO_MANY_ROWS,
        ConnectionState.UNAUTHORIZED,
        ConnectionState.HEROKU_UNAUTH,
        ConnectionState.INACTIVE_ORG,
        ConnectionState.SYSTEM_ON_ICE,
        ConnectionState.ICED,
    }
)


class MappingState(StrEnum):
    DATA_SYNCED = "DATA_SYNCED"
    INITIAL = "INITIAL"
    RESYNC = "RESYNC"
    RELOAD_TABLE = "RELOAD_TABLE"
    SCHEMA_CHANGED = "SCHEMA_CHANGED"
    POLLING_SF_CHANGES = "POLLING_SF_CHANGES"
    POLLING_SF_BULK = "POLLING_SF_BULK"
    POLLING_SF_FOR_DELETES = "POLLING_SF_FOR_DELETES"
    WAIT_BULK_LOAD = "WAIT_BULK_LOAD"
    LOADING_BULK_JOB = "LOADING_BULK_JOB"
    RESOLVE_EXTERNAL_IDS = "RESOLVE_EXTERNAL_IDS"
    POLL_EXTERNAL_IDS = "POLL_EXTERNAL_IDS"
    WAIT_BULK_UPDATE = "WAIT_BULK_UPDATE"
    APPLYING_BULK_UPDATE = "APPLYING_BULK_UPDATE"
    BULK_LOAD_ERROR = "BULK_LOAD_ERROR"
    RECOVERY = "RECOVERY"
    ABORTED = "ABORTED"
    SYSTEM_ERROR = "SYSTEM_ERROR"
    DB_UNAVAILABLE = "DB_UNAVAILABLE"
    BAD_CONFIG = "BAD_CONFIG"
    SYNC_REMOVED = "SYNC_REMOVED"
    INACTIVE_ORG = "INACTIVE_ORG"
    UNAUTHORIZED = "UNAUTHORIZED"


# The grouping django-heroku-connect uses for its health check: ok / temporary problem / error.
MAPPING_OK_STATES = frozenset(
    {
        MappingState.DATA_SYNCED,
        MappingState.RESYNC,
        MappingState.RELOAD_TABLE,
        MappingState.POLLING_SF_CHANGES,
        MappingState.POLLING_SF_BULK,
        MappingState.POLLING_SF_FOR_DELETES,
        MappingState.WAIT_BULK_LOAD,
        MappingState.WAIT_BULK_UPDATE,
        MappingState.LOADING_BULK_JOB,
        MappingState.RESOLVE_EXTERNAL_IDS,
        MappingState.APPLYING_BULK_UPDATE,
        MappingState.POLL_EXTERNAL_IDS,
        MappingState.ABORTED,
    }
)
MAPPING_TEMPORARY_STATES = frozenset(
    {MappingState.INITIAL, MappingState.SCHEMA_CHANGED, MappingState.RECOVERY}
)
MAPPING_ERROR_STATES = frozenset(
    {
        MappingState.BULK_LOAD_ERROR,
        MappingState.SYSTEM_ERROR,
        MappingState.DB_UNAVAILABLE,
        MappingState.BAD_CONFIG,
        MappingState.SYNC_REMOVED,
        MappingState.INACTIVE_ORG,
        MappingState.UNAUTHORIZED,
    }
)
# A load (first load, reload, or loading newly added columns) is running.
LOADING_STATES = frozenset(
    {
        MappingState.INITIAL,
        MappingState.RELOAD_TABLE,
        MappingState.RESYNC,
        MappingState.WAIT_BULK_LOAD,
        MappingState.LOADING_BULK_JOB,
    }
)
# States of a mapping that has loaded and is keeping up with Salesforce. Being in one is not
# enough to call a mapping in sync: wait-sync also compares its row counts with Salesforce's.
SYNCED_STATES = frozenset(
    {
        MappingState.DATA_SYNCED,
        MappingState.POLLING_SF_CHANGES,
        MappingState.POLLING_SF_BULK,
        MappingState.POLLING_SF_FOR_DELETES,
    }
)


def mapping_state_group(state: str | None) -> str:
    """One of "ok", "temporary", "error", or "unknown" for a state none of the groups lists."""
    if state in MAPPING_OK_STATES:
        return "ok"
    if state in MAPPING_TEMPORARY_STATES:
        return "temporary"
    if state in MAPPING_ERROR_STATES:
        return "error"
    return "unknown"


# --- discovery (hc-central: link the user, list the connections) ------------------------------


class ConnectionRef(_Model):
    """One entry of discovery or link: where a connection lives, not its details.

    Not every discovery answer carries `region_url`: some entries hold only an absolute
    `detail_url`, and the connection's detail answer carries `region_url` (the fixtures of
    heroku/heroku-connect-plugin test/commands/connect/diagnose.ts). `ConnectClient.discover`
    fills it in from there, as the plugin's `withConnection` merges the two.
    """

    id: str
    resource_name: str | None = None
    display_name: str | None = None
    addon_type: str | None = None
    app_name: str | None = None
    app_id: str | None = None
    region: str | None = None
    region_url: str | None = None
    cell: str | None = None
    detail_url: str | None = None

    @property
    def api_root(self) -> str:
        """`{region_url}/api/v3`, whether or not `region_url` ends with a slash."""
        if not self.region_url:
            raise ValueError(f"connection {self.id} has no region_url")
        return self.region_url.rstrip("/") + "/api/v3"

    def resolve(self, url: str) -> str:
        """`url` made absolute against `region_url` (see `resolve_url`)."""
        resolved = resolve_url(self.region_url, url)
        if resolved is None:
            raise ValueError(f"connection {self.id} has no region_url to resolve {url!r} against")
        return resolved


def resolve_url(region_url: str | None, url: str) -> str | None:
    """An absolute URL as it is; a relative one (a `detail_url` of `/api/v3/connections/{id}` in
    a connection's detail, a `result_url`) appended to `region_url` as axios joins a URL to its
    `baseURL` in heroku/heroku-connect-plugin, so a path prefix of `region_url` is kept. None for
    a relative URL without a `region_url`."""
    if urlsplit(url).scheme:
        return url
    if not region_url:
        return None
    return region_url.rstrip("/") + "/" + url.lstrip("/")


class DiscoveryPage(_Model):
    """One page of `GET hc-central/connections`."""

    count: int | None = None
    next: str | None = None
    previous: str | None = None
    results: list[ConnectionRef] = Field(default_factory=list)


class LinkResult(_Model):
    user: dict[str, Any] | None = None
    connections: list[ConnectionRef] = Field(default_factory=list)
    regions: dict[str, Any] = Field(default_factory=dict)
    cells: dict[str, Any] = Field(default_factory=dict)


# --- mappings, and their config as the mapping and the export show it ---------------------------


class IndexSpec(_Model):
    unique: bool = False


class MappingConfig(_Model):
    """A mapping's `config`, as in the mapping object and in the export."""

    access: str | None = None
    sf_notify_enabled: bool | None = None
    sf_polling_seconds: int | None = None
    sf_max_daily_api_calls: int | None = None
    fields: dict[str, dict[str, Any]] = Field(default_factory=dict)
    indexes: dict[str, IndexSpec] = Field(default_factory=dict)
    upsert_field: str | None = None
    revision: int | None = None
    applied_at: str | None = None

    def payload(self) -> dict[str, Any]:
        """The config as JSON: only the fields that were given or set, unknown ones included."""
        return self.model_dump(mode="json", exclude_unset=True)


class Counts(_Model):
    # Which name HC sends is unconfirmed (assumption `counts-field-name`): the CLI plugin's test
    # fixture says `db`, the terraform provider `count`; both are read.
    db: int | None = Field(default=None, validation_alias=AliasChoices("db", "count"))
    sf: int | None = None
    pending: int | None = None
    errors: int | None = None


class Mapping(_Model):
    id: str
    object_name: str | None = None
    state: str | None = None
    state_description: str | None = None
    access: str | None = None
    config: MappingConfig | None = None
    counts: Counts | None = None
    actively_writing: bool | None = None
    is_polling: bool | None = None
    times: dict[str, Any] | None = None
    detail_url: str | None = None
    errors_url: str | None = None


# --- connection (GET /connections/{id}?deep=true) -----------------------------------------------


class Connection(_Model):
    id: str
    name: str | None = None
    resource_name: str | None = None
    addon_id: str | None = None
    app_name: str | None = None
    schema_name: str | None = None
    db_key: str | None = None
    state: str | None = None
    mappings_summary_state: str | None = None
    # Flags are booleans today; anything else Heroku adds is kept, not rejected.
    features: dict[str, Any] = Field(default_factory=dict)
    sf_info: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    plan: str | None = None
    logplex_log_enabled: bool | None = None
    detail_url: str | None = None
    mappings: list[Mapping] = Field(default_factory=list)

    def mapping(self, object_name: str) -> Mapping | None:
        """The mapping of a Salesforce object, matched case-insensitively, or None."""
        wanted = object_name.lower()
        for mapping in self.mappings:
            if (mapping.object_name or "").lower() == wanted:
                return mapping
        return None


# --- export / import (actions/export, actions/import) -------------------------------------------


class ExportMapping(_Model):
    object_name: str
    config: MappingConfig = Field(default_factory=MappingConfig)


class ExportDocument(_Model):
    """The configuration JSON of `actions/export` and `actions/import`."""

    version: int = 1
    connection: dict[str, Any] | None = None
    mappings: list[ExportMapping] = Field(default_factory=list)

    @property
    def object_names(self) -> list[str]:
        return [m.object_name for m in self.mappings]

    def payload(self) -> dict[str, Any]:
        """The body to import: what was read, plus what was changed, and always `version`."""
        data = self.model_dump(mode="json", exclude_unset=True)
        data.setdefault("version", self.version)
        data.setdefault("mappings", [])
        return data

    def filtered(
        self, object_names: Iterable[str], *, keep_connection: bool = True
    ) -> ExportDocument:
        """A new document with only these objects' mappings (names compared case-insensitively).

        Raises ValueError naming any object the document has no mapping for.
        """
        wanted = _lower_index(object_names)
        present = {m.object_name.lower() for m in self.mappings}
        missing = [name for key, name in wanted.items() if key not in present]
        if missing:
            raise ValueError(f"the export has no mapping for {', '.join(missing)}")
        doc = self.model_copy(deep=True)
        doc.mappings = [m for m in doc.mappings if m.object_name.lower() in wanted]
        if not keep_connection:
            doc.connection = None
            doc.__pydantic_fields_set__.discard("connection")
        return doc

    def with_added_fields(self, added: MappingABC[str, Iterable[str]]) -> ExportDocument:
        """A new document where each object's mapping also syncs the given Salesforce fields.

        Fields already mapped are left as they are. Raises ValueError for an unknown object.
        """
        doc = self.model_copy(deep=True)
        by_name = {m.object_name.lower(): m for m in doc.mappings}
        missing = [name for name in added if name.lower() not in by_name]
        if missing:
            raise ValueError(f"the export has no mapping for {', '.join(missing)}")
        for name, new_fields in added.items():
            mapping = by_name[name.lower()]
            config = mapping.config
            fields = dict(config.fields)
            for field in [new_fields] if isinstance(new_fields, str) else new_fields:
                fields.setdefault(field, {})
            # Assignments mark the fields as set, so payload() keeps them.
            config.fields = fields
            mapping.config = config
        return doc


def _lower_index(names: Iterable[str]) -> dict[str, str]:
    return {name.lower(): name for name in names}


# --- write errors (GET .../errors: the last 24 hours' failed writes to Salesforce) -------------


class WriteError(_Model):
    id: str | None = None
    table_name: str | None = None
    record_id: str | None = None
    message: str | None = None
    created_at: str | None = None


class ErrorList(_Model):
    count: int | None = None
    results: list[WriteError] = Field(default_factory=list)


# --- diagnostics: validations, notifications, schema diff --------------------------------------
# As heroku/heroku-connect-plugin reads them: src/commands/connect/diagnose.ts,
# src/commands/connect/notifications/index.ts and src/commands/connect/manage-sf-api-version.ts.


class Check(_Model):
    """One check of Heroku Connect's diagnosis (`connect:diagnose`), passed or not."""

    display_name: str
    doc_url: str | None = None
    message: str | None = ""
    rule_id: str | None = None
    status: str | None = None


FailureLevel = Literal["error", "warning"]


class CheckResults(_Model):
    """The checks of a connection or of one mapping, by outcome. HC may leave any list out
    (the plugin's fixture answers `{"mappings": {"Account": {}}}`)."""

    errors: list[Check] = Field(default_factory=list)
    warnings: list[Check] = Field(default_factory=list)
    passes: list[Check] = Field(default_factory=list)
    skips: list[Check] = Field(default_factory=list)

    @field_validator("errors", "warnings", "passes", "skips", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def failed(self) -> list[Check]:
        """The checks that did not pass: errors, then warnings."""
        return [*self.errors, *self.warnings]


@dataclass(frozen=True)
class DiagnosedFailure:
    """A failed check: of the connection (`object_name` None) or of one object's mapping."""

    object_name: str | None
    level: FailureLevel
    check: Check

    def describe(self) -> str:
        """One line for people: `Account: Mapping State — <message>`, `(warning)` after the
        check's name for a warning, `connection` for a check of the whole connection."""
        where = self.object_name if self.object_name is not None else "connection"
        name = self.check.display_name + (" (warning)" if self.level == "warning" else "")
        message = " ".join((self.check.message or "").split())
        return f"{where}: {name} — {message}" if message else f"{where}: {name}"


class Diagnosis(CheckResults):
    """The answer of a connection's validations: its own checks, and each mapping's by object."""

    mappings: dict[str, CheckResults] = Field(default_factory=dict)

    @field_validator("mappings", mode="before")
    @classmethod
    def _null_is_none(cls, value: Any) -> Any:
        return {} if value is None else value

    def failures(self) -> list[DiagnosedFailure]:
        """Every error and warning: the connection's first, then the mappings' by object name;
        within each, errors before warnings."""
        found = _failures(None, self)
        for name in sorted(self.mappings, key=str.lower):
            found.extend(_failures(name, self.mappings[name]))
        return found

    def summary(self) -> list[str]:
        """One line per failure (`DiagnosedFailure.describe`), in the order of `failures()`."""
        return [failure.describe() for failure in self.failures()]

    @property
    def ok(self) -> bool:
        """No error and no warning anywhere."""
        return not self.failures()


def _failures(object_name: str | None, results: CheckResults) -> list[DiagnosedFailure]:
    return [DiagnosedFailure(object_name, "error", check) for check in results.errors] + [
        DiagnosedFailure(object_name, "warning", check) for check in results.warnings
    ]


class Notification(_Model):
    """One unacknowledged notification of a connection (`connect:notifications`)."""

    id: str | None = None
    created_at: str | None = None
    event_type: str | None = None
    message: str | None = None


class NotificationList(_Model):
    results: list[Notification] = Field(default_factory=list)


class SchemaDiffMapping(_Model):
    """One mapping in a schema diff between two Salesforce API versions."""

    name: str | None = None
    result_message: str | None = None
    fields_have_changed: bool | None = None
    has_unsafe_changes: bool | None = None
    action_undetermined: bool | None = None


class SchemaDiff(_Model):
    """`GET .../schema-diff`: each mapping's field changes between the connection's Salesforce
    API version and a target one (`connect:manage-sf-api-version` without `--confirm`)."""

    current_api_version: str | None = None
    target_api_version: str | None = None
    mappings: list[SchemaDiffMapping] = Field(default_factory=list)

    @field_validator("mappings", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


# --- Platform API (https://devcenter.heroku.com/articles/platform-api-reference) ---------------


class App(_Model):
    id: str | None = None
    name: str
    maintenance: bool | None = None
    region: dict[str, Any] | None = None


class Addon(_Model):
    id: str | None = None
    name: str
    state: str | None = None
    addon_service: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    config_vars: list[str] = Field(default_factory=list)
    provision_message: str | None = None
    web_url: str | None = None

    @property
    def service_name(self) -> str | None:
        return _text(self.addon_service, "name")

    @property
    def plan_name(self) -> str | None:
        return _text(self.plan, "name")


class AddonAttachment(_Model):
    """One app's attachment of an add-on: the config var prefix it appears under (`name`, e.g.
    DATABASE, or DATABASE_CONNECTION_POOL for Heroku Postgres's server-side pooler)."""

    id: str | None = None
    name: str
    addon: dict[str, Any] | None = None
    app: dict[str, Any] | None = None
    namespace: str | None = None

    @property
    def app_name(self) -> str | None:
        return _text(self.app, "name")

    @property
    def addon_name(self) -> str | None:
        return _text(self.addon, "name")

    @property
    def addon_id(self) -> str | None:
        return _text(self.addon, "id")

    @property
    def pooler(self) -> bool:
        """Heroku Postgres's server-side connection pool (PgBouncer on the database server).
        Told by the namespace `connection-pooling:…` or, failing that, the `_CONNECTION_POOL`
        name the CLI gives it (assumption `pooler-attachment`)."""
        return (self.namespace or "").startswith("connection-pooling") or self.name.endswith(
            "CONNECTION_POOL"
        )


class Formation(_Model):
    id: str | None = None
    type: str
    quantity: int | None = None
    size: str | None = None
    dyno_size: dict[str, Any] | None = None
    command: str | None = None

    @property
    def dyno_size_name(self) -> str | None:
        return _text(self.dyno_size, "name") or self.size


class FormationUpdate(_Model):
    """One element of `PATCH /apps/{app}/formation` `updates`. A `dyno_size` given as a plain
    name is sent as `{"name": ...}`, the Platform API's shape."""

    type: str
    quantity: int | None = None
    dyno_size: str | dict[str, str] | None = None

    def payload(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        if isinstance(self.dyno_size, str):
            data["dyno_size"] = {"name": self.dyno_size}
        return data


class Dyno(_Model):
    id: str | None = None
    name: str
    type: str | None = None
    state: str | None = None
    size: str | None = None
    release: dict[str, Any] | None = None


def _text(data: MappingABC[str, Any] | None, key: str) -> str | None:
    """`data[key]` when it is a string: a nested object's `name` or `id`, as Heroku sends it."""
    value = (data or {}).get(key)
    return value if isinstance(value, str) else None


def config_vars_from(data: MappingABC[str, Any]) -> dict[str, SecretStr]:
    """Config var values as secrets (they include DATABASE_URL); a null value is left out."""
    return {str(k): SecretStr(str(v)) for k, v in data.items() if v is not None}
