"""Client for the Heroku Connect API v3: discovery, connections, mappings, diagnostics.

The API is described on https://devcenter.heroku.com/articles/heroku-connect-api; what it
leaves open, and swapbot assumes, is listed in `assumptions.py`. Where the docs are silent, this
client does what Heroku's own client does (heroku/heroku-connect-plugin, src/lib/clients/ and
src/commands/connect/): the same headers, the same discovery merge, the same diagnostics calls.

Connections live on regional hosts: discovery (on hc-central) gives each one a `region_url`, and
every per-connection call goes to `{region_url}/api/v3`. A discovery entry without `region_url`
is completed from the connection's detail answer (`GET {detail_url}?deep=true`), as the plugin's
`withConnection` merges the two. Methods take the `ConnectionRef` that discovery returned, so
they always reach the right host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import Any, Literal, get_args
from urllib.parse import urljoin

import requests

from ._exceptions import ConnectionNotFound, DiagnoseTimeout, MultipleConnections
from ._models import (
    CheckResults,
    Connection,
    ConnectionRef,
    Diagnosis,
    DiscoveryPage,
    ErrorList,
    ExportDocument,
    JsonValue,
    LinkResult,
    Mapping,
    MappingConfig,
    Notification,
    NotificationList,
    SchemaDiff,
    resolve_url,
)
from ._transport import (
    BaseClient,
    build_url,
    invalid_response,
    json_body,
    parse,
)

__all__ = [
    "AUTHORIZE_ENVIRONMENTS",
    "DEFAULT_CENTRAL_URL",
    "PUT_BODIES",
    "ConnectClient",
    "PutBody",
]

DEFAULT_CENTRAL_URL = "https://hc-central.heroku.com"
# HC is not the Platform API: it speaks plain JSON, not `application/vnd.heroku+json`. Heroku's
# own client names itself with `Heroku-Client: cli` on every HC request, discovery included
# (heroku/heroku-connect-plugin src/lib/clients/connect.ts and discovery.ts); swapbot names itself.
HC_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "Heroku-Client": "swapbot",
}
AUTHORIZE_ENVIRONMENTS = ("production", "sandbox", "custom")
MAX_DISCOVERY_PAGES = 50
# The fields of a connection's detail answer a discovery entry may lack and takes from it.
REF_FIELDS = tuple(ConnectionRef.model_fields)

# The body of `PUT /mappings/{id}`, which Heroku does not document beyond "the create format plus
# revision" (assumption `put-mapping-body`):
#   "create-plus-revision": {"object_name": ..., "config": {...config, "revision": N}}
#   "upsert-on-mapping":    {"config": {...config without upsert_field, "revision": N},
#                            "upsert_field": X}, as a prerelease fixture of
#                           heroku/heroku-connect-plugin (test/support/test-fixtures.ts) puts
#                           `revision` in the config and `upsert_field` on the mapping.
PutBody = Literal["create-plus-revision", "upsert-on-mapping"]
PUT_BODIES: tuple[PutBody, ...] = get_args(PutBody)

# How heroku/heroku-connect-plugin src/commands/connect/diagnose.ts polls a validation result.
DIAGNOSE_POLL_SECONDS = 0.5
DIAGNOSE_MAX_WAIT = 300.0
NOTIFICATIONS_PAGE_SIZE = 1000

ConfigLike = MappingConfig | MappingABC[str, Any]


class ConnectClient(BaseClient):
    """Heroku Connect API v3 over one session. `base_url` is hc-central's (discovery); each
    connection's own calls go to its region. Not-safe-to-repeat calls are marked (UNSAFE): after
    a TransportError or ServerError from one of them, read the live state before retrying.
    """

    DEFAULT_URL = DEFAULT_CENTRAL_URL
    HEADERS = HC_HEADERS

    # --- discovery (hc-central) ----------------------------------------------------------------

    def link(self, app: str) -> LinkResult:
        """Put the token's user on the access list of the app's HC add-ons (`POST /auth/{app}`).

        Safe to repeat; discovery shows an add-on only once this was done for it.
        """
        url = build_url(self.base_url, "auth/{app}", app=app)
        return self._transport.request_model(LinkResult, "POST", url, idempotent=True)

    def discover(self, app: str, resource_name: str | None = None) -> list[ConnectionRef]:
        """The app's connections the user can see, optionally only one add-on's
        (`GET /connections?app=...&resource_name=...` on hc-central, every page).

        An entry without `region_url` is completed from its connection's detail answer, so
        every ref returned can be used at once (a dry run uses these without linking)."""
        query: dict[str, str | int] = {"app": app}
        if resource_name:
            query["resource_name"] = resource_name
        # The query goes with the first page only: each `next` URL carries its own.
        params: dict[str, str | int] | None = query
        url: str | None = build_url(self.base_url, "connections")
        seen: set[str] = set()
        refs: dict[str, ConnectionRef] = {}
        while url and url not in seen and len(seen) < MAX_DISCOVERY_PAGES:
            seen.add(url)
            page = self._discovery_page(url, params)
            for ref in page.results:
                refs.setdefault(ref.id, ref)
            # `next` is a complete URL (query included); a relative one is resolved as a browser would.
            url = urljoin(self.base_url + "/", page.next) if page.next else None
            params = None
        return list(refs.values())

    def _discovery_page(self, url: str, params: dict[str, str | int] | None) -> DiscoveryPage:
        """One page of discovery, each entry without `region_url` (or `id`) completed from its
        connection's detail answer."""
        response = self._transport.request("GET", url, params=params)
        data = json_body(response, "GET")
        results = data.get("results") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(results, list):
            entries: list[JsonValue] = [
                self._completed(entry) if isinstance(entry, dict) else entry for entry in results
            ]
            data = {**data, "results": entries}
        return parse(DiscoveryPage, data, response, "GET")

    def _completed(self, entry: dict[str, JsonValue]) -> dict[str, JsonValue]:
        """A discovery entry with what it lacks of a ref taken from the connection's detail
        answer (`GET {detail_url}?deep=true`, one request, as the plugin asks it), when it lacks
        `region_url` or `id`.

        heroku/heroku-connect-plugin src/lib/connect/api.ts (`withConnection`) merges
        `{...discoveryEntry, ...detailAnswer}` and reads `region_url` from the result; here the
        discovery entry's own values win, and only a ref's fields are taken (not the mappings).
        Refs are kept per run, so this costs one read per connection and run.
        """
        if entry.get("region_url") and entry.get("id") is not None:
            return entry
        detail_url = entry.get("detail_url")
        if not isinstance(detail_url, str) or not detail_url:
            return entry
        region_url = entry.get("region_url")
        url = resolve_url(region_url if isinstance(region_url, str) else None, detail_url)
        if url is None:
            return entry  # a relative detail_url and no region_url: nothing to resolve it with
        response = self._transport.request("GET", url, params={"deep": "true"})
        detail = json_body(response, "GET")
        if not isinstance(detail, dict):
            raise invalid_response(response, "GET", "the connection detail is not an object")
        merged = dict(entry)
        for key in REF_FIELDS:
            if merged.get(key) is None and detail.get(key) is not None:
                merged[key] = detail[key]
        return merged

    def find_connection(self, app: str, resource_name: str | None = None) -> ConnectionRef:
        """The one connection of `app` (and add-on `resource_name`), linking first if needed.

        Discovery is empty until the user is on the add-on's access list, so on an empty answer
        this links and asks again, as the CLI plugin does. The ref has a `region_url`, taken
        from the connection's detail answer when discovery left it out.
        """
        refs = self._matching(app, resource_name)
        if not refs:
            self.link(app)
            refs = self._matching(app, resource_name)
        if not refs:
            raise ConnectionNotFound(app, resource_name)
        if len(refs) > 1:
            raise MultipleConnections(app, [ref.resource_name or ref.id for ref in refs])
        return refs[0]

    def _matching(self, app: str, resource_name: str | None) -> list[ConnectionRef]:
        # Filter again here: a cell that ignored a query parameter must not hand us the wrong one.
        return [
            ref
            for ref in self.discover(app, resource_name)
            if ((ref.app_name is None and ref.app_id is None) or app in (ref.app_name, ref.app_id))
            and (not resource_name or ref.resource_name in (None, resource_name))
        ]

    # --- connections ---------------------------------------------------------------------------

    def get_connection(self, ref: ConnectionRef) -> Connection:
        """The connection with its mappings and their states (`?deep=true`), from `detail_url`
        (a relative one is resolved against `region_url`) or else the regional API root."""
        url = ref.resolve(ref.detail_url) if ref.detail_url else None
        url = url or self._url(ref, "connections/{id}", id=ref.id)
        return self._transport.request_model(Connection, "GET", url, params={"deep": "true"})

    def configure(self, ref: ConnectionRef, *, db_key: str, schema_name: str) -> Connection:
        """Choose the database config var and the schema of a new connection."""
        url = self._url(ref, "connections/{id}", id=ref.id)
        body = {"db_key": db_key, "schema_name": schema_name}
        response = self._transport.request("PATCH", url, json=body)
        data = json_body(response, "PATCH")
        if not isinstance(data, dict) or "id" not in data:
            return self.get_connection(ref)
        return parse(Connection, data, response, "PATCH")

    def authorize_url(
        self,
        ref: ConnectionRef,
        *,
        next_url: str,
        environment: str = "production",
        domain: str | None = None,
    ) -> str:
        """The Salesforce login URL a person opens to authorize the connection; once logged
        in, HC sends them on to `next_url` (heroku/heroku-connect-plugin always sends it)."""
        if environment not in AUTHORIZE_ENVIRONMENTS:
            raise ValueError(f"environment must be one of {', '.join(AUTHORIZE_ENVIRONMENTS)}")
        if (environment == "custom") != bool(domain):
            raise ValueError("domain is required for environment 'custom', and only for it")
        body: dict[str, str] = {"environment": environment, "next": next_url}
        if domain:
            body["domain"] = domain
        url = self._url(ref, "connections/{id}/authorize_url", id=ref.id)
        response = self._transport.request("POST", url, json=body, idempotent=True)
        data = json_body(response, "POST")
        redirect = data.get("redirect") if isinstance(data, dict) else None
        if not isinstance(redirect, str) or not redirect:
            raise invalid_response(response, "POST", "the response has no redirect URL")
        return redirect

    def export_config(self, ref: ConnectionRef) -> ExportDocument:
        url = self._url(ref, "connections/{id}/actions/export", id=ref.id)
        return self._transport.request_model(ExportDocument, "GET", url)

    def import_config(self, ref: ConnectionRef, doc: ExportDocument | MappingABC[str, Any]) -> None:
        """(UNSAFE) Import a configuration. The connection goes to IMPORT_CONFIGURATION."""
        body = doc.payload() if isinstance(doc, ExportDocument) else dict(doc)
        url = self._url(ref, "connections/{id}/actions/import", id=ref.id)
        self._transport.request("POST", url, json=body, idempotent=False)

    def pause(self, ref: ConnectionRef) -> None:
        """Ask HC to pause; it does so only from IDLE, so expect BadRequest while it is busy."""
        self._action(ref, "pause")

    def resume(self, ref: ConnectionRef) -> None:
        self._action(ref, "resume")

    def restart(self, ref: ConnectionRef) -> None:
        """Recover after an error (`connect:recover`); the connection passes through RECOVERY."""
        self._action(ref, "restart")

    def _action(self, ref: ConnectionRef, action: str) -> None:
        url = self._url(ref, "connections/{id}/actions/{action}", id=ref.id, action=action)
        self._transport.request("POST", url, idempotent=True)

    def errors(self, ref: ConnectionRef) -> ErrorList:
        """Write errors of the last 24 hours, whole connection."""
        url = self._url(ref, "connections/{id}/errors", id=ref.id)
        return self._transport.request_model(ErrorList, "GET", url)

    def app_db_keys(self, ref: ConnectionRef, app: str) -> list[str]:
        """The database config vars HC can use as `db_key` (e.g. DATABASE_URL)."""
        url = self._url(ref, "apps/{app}", app=app)
        response = self._transport.request("GET", url)
        data = json_body(response, "GET")
        keys = data.get("db_keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise invalid_response(response, "GET", "the response has no db_keys list")
        names = [key.get("name") for key in keys if isinstance(key, dict)]
        return [name for name in names if isinstance(name, str) and name]

    # --- mappings ------------------------------------------------------------------------------

    def get_mapping(self, ref: ConnectionRef, mapping_id: str) -> Mapping:
        url = self._url(ref, "mappings/{id}", id=mapping_id)
        return self._transport.request_model(Mapping, "GET", url)

    def create_mapping(
        self, ref: ConnectionRef, object_name: str, config: ConfigLike
    ) -> Mapping | None:
        """(UNSAFE) Map a Salesforce object. Returns the mapping when HC sends it back."""
        url = self._url(ref, "connections/{id}/mappings", id=ref.id)
        body = {"object_name": object_name, "config": _config_payload(config)}
        return self._maybe_mapping(
            self._transport.request("POST", url, json=body, idempotent=False), "POST"
        )

    def update_mapping(
        self,
        ref: ConnectionRef,
        mapping_id: str,
        object_name: str,
        config: ConfigLike,
        *,
        body: PutBody = "create-plus-revision",
    ) -> Mapping | None:
        """(UNSAFE, body unconfirmed) Replace a mapping's config, e.g. to add fields.

        `config` is the whole config with the mapping's current `revision` (read it with
        get_mapping); HC sets `applied_at`, so it is not sent. `body` picks the shape of the
        request (see `PutBody`): by default the create body plus the revision,
        `{"object_name": ..., "config": {..., "revision": N}}`; "upsert-on-mapping" sends
        `{"config": {...}, "upsert_field": X}` with no object_name, upsert_field moved out of
        the config (and sent only when the config has one).
        """
        payload = _config_payload(config)
        if payload.get("revision") is None:
            raise ValueError("config.revision must hold the mapping's current revision")
        payload.pop("applied_at", None)
        data: dict[str, Any]
        if body == "create-plus-revision":
            if not object_name:
                raise ValueError("object_name is required")
            data = {"object_name": object_name, "config": payload}
        elif body == "upsert-on-mapping":
            upsert_field = payload.pop("upsert_field", None)
            data = {"config": payload}
            if upsert_field is not None:
                data["upsert_field"] = upsert_field
        else:
            raise ValueError(f"body must be one of {', '.join(PUT_BODIES)}")
        url = self._url(ref, "mappings/{id}", id=mapping_id)
        return self._maybe_mapping(
            self._transport.request("PUT", url, json=data, idempotent=False), "PUT"
        )

    def delete_mapping(self, ref: ConnectionRef, mapping_id: str) -> None:
        url = self._url(ref, "mappings/{id}", id=mapping_id)
        self._transport.request("DELETE", url, expect={204})

    def reload_mapping(self, ref: ConnectionRef, mapping_id: str) -> None:
        """(UNSAFE) Empty the mapping's table and load it again from Salesforce."""
        url = self._url(ref, "mappings/{id}/actions/reload", id=mapping_id)
        self._transport.request("POST", url, idempotent=False, expect={202})

    def mapping_errors(self, ref: ConnectionRef, mapping_id: str) -> ErrorList:
        url = self._url(ref, "mappings/{id}/errors", id=mapping_id)
        return self._transport.request_model(ErrorList, "GET", url)

    def describe(self, ref: ConnectionRef, object_name: str) -> dict[str, Any]:
        """The Salesforce object's fields as the connection sees them (`GET .../schemas/{Object}`)."""
        url = self._url(ref, "connections/{id}/schemas/{obj}", id=ref.id, obj=object_name)
        response = self._transport.request("GET", url)
        data = json_body(response, "GET")
        if not isinstance(data, dict):
            raise invalid_response(response, "GET", "the object description is not an object")
        return data

    # --- diagnostics (heroku/heroku-connect-plugin src/commands/connect/) -----------------------

    def diagnose(
        self,
        ref: ConnectionRef,
        *,
        poll_seconds: float = DIAGNOSE_POLL_SECONDS,
        max_wait: float = DIAGNOSE_MAX_WAIT,
        sleep: Callable[[float], None] | None = None,
    ) -> Diagnosis:
        """HC's own checks of the connection and each mapping (`connect:diagnose`).

        `POST .../validations` answers 202 with a `result_url`; that answers 202 until the
        result is ready, then 200 with it. Polled every `poll_seconds` (with `sleep`, by default
        the retry policy's) for up to `max_wait` seconds, then DiagnoseTimeout. Safe to repeat:
        the checks only read.
        """
        if poll_seconds < 0 or max_wait < 0:
            raise ValueError("poll_seconds and max_wait must not be negative")
        wait = sleep or self._transport.retry.sleep
        url = self._url(ref, "connections/{id}/validations", id=ref.id)
        response = self._transport.request("POST", url, idempotent=True)
        data = json_body(response, "POST")
        result_url = data.get("result_url") if isinstance(data, dict) else None
        if not isinstance(result_url, str) or not result_url:
            raise invalid_response(response, "POST", "the response has no result_url")
        result_url = ref.resolve(result_url)
        started = time.monotonic()
        slept = 0.0
        while True:
            response = self._transport.request("GET", result_url, expect={200, 202})
            if response.status_code == 200:
                return parse(Diagnosis, json_body(response, "GET"), response, "GET")
            # Slept time counts even when `sleep` is a test's fake that returns at once.
            waited = max(slept, time.monotonic() - started)
            if waited + poll_seconds > max_wait:
                raise DiagnoseTimeout(ref.id, waited)
            wait(poll_seconds)
            slept += poll_seconds

    def mapping_diagnosis(self, ref: ConnectionRef, mapping_id: str) -> CheckResults:
        """HC's checks of one mapping (`connect:mapping:diagnose`), answered at once."""
        url = self._url(ref, "mappings/{id}/validations", id=mapping_id)
        return self._transport.request_model(CheckResults, "GET", url)

    def notifications(
        self,
        ref: ConnectionRef,
        *,
        after: str | None = None,
        before: str | None = None,
        event_type: str | None = None,
        page_size: int = NOTIFICATIONS_PAGE_SIZE,
    ) -> list[Notification]:
        """The connection's unacknowledged notifications (`connect:notifications`), filtered by
        date (`after`, `before`: as HC takes them, e.g. 2024-01-31) and `event_type`."""
        url = self._url(ref, "connections/{id}/notifications", id=ref.id)
        params = _notification_filters(after, before, event_type, page_size)
        return self._transport.request_model(NotificationList, "GET", url, params=params).results

    def acknowledge_notifications(
        self,
        ref: ConnectionRef,
        *,
        after: str | None = None,
        before: str | None = None,
        event_type: str | None = None,
        page_size: int = NOTIFICATIONS_PAGE_SIZE,
    ) -> None:
        """Acknowledge the notifications matching the filters (`connect:notifications:
        acknowledge`): they go as query parameters, with no body; HC answers 204. Safe to
        repeat."""
        url = self._url(ref, "connections/{id}/notifications/acknowledge", id=ref.id)
        params = _notification_filters(after, before, event_type, page_size)
        self._transport.request("POST", url, params=params, idempotent=True, expect={204})

    def schema_diff(self, ref: ConnectionRef, target_version: str | None = None) -> SchemaDiff:
        """Each mapping's field changes between the connection's Salesforce API version and
        `target_version` (`connect:manage-sf-api-version` without `--confirm`); changes nothing."""
        url = self._url(ref, "connections/{id}/schema-diff", id=ref.id)
        params = {"target_version": target_version} if target_version else None
        return self._transport.request_model(SchemaDiff, "GET", url, params=params)

    # --- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _url(ref: ConnectionRef, template: str, **segments: object) -> str:
        return build_url(ref.api_root, template, **segments)

    @staticmethod
    def _maybe_mapping(response: requests.Response, method: str) -> Mapping | None:
        data = json_body(response, method)
        if not isinstance(data, dict) or "id" not in data:
            return None
        return parse(Mapping, data, response, method)


def _config_payload(config: ConfigLike) -> dict[str, Any]:
    if not isinstance(config, MappingConfig):
        config = MappingConfig.model_validate(dict(config))
    return config.payload()


def _notification_filters(
    after: str | None, before: str | None, event_type: str | None, page_size: int
) -> dict[str, str | int]:
    """The query of the notification calls, as the plugin sends it: None filters left out."""
    if page_size < 1:
        raise ValueError("page_size must be at least 1")
    given = {"after": after, "before": before, "event_type": event_type}
    params: dict[str, str | int] = {key: value for key, value in given.items() if value}
    params["page_size"] = page_size
    return params
