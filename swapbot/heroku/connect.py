"""Client for the Heroku Connect API v3: discovery, connections, mappings.

The API is described on https://devcenter.heroku.com/articles/heroku-connect-api; what it
leaves open, and swapbot assumes, is listed in `assumptions.py`.

Connections live on regional hosts: discovery (on hc-central) gives each one a `region_url`, and
every per-connection call goes to `{region_url}/api/v3`. Methods take the `ConnectionRef` that
discovery returned, so they always reach the right host.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import Any
from urllib.parse import urljoin

import requests

from ._exceptions import ConnectionNotFound, MultipleConnections
from ._models import (
    Connection,
    ConnectionRef,
    DiscoveryPage,
    ErrorList,
    ExportDocument,
    LinkResult,
    Mapping,
    MappingConfig,
)
from ._transport import (
    BaseClient,
    build_url,
    invalid_response,
    json_body,
    parse,
)

__all__ = ["AUTHORIZE_ENVIRONMENTS", "DEFAULT_CENTRAL_URL", "ConnectClient"]

DEFAULT_CENTRAL_URL = "https://hc-central.heroku.com"
# HC is not the Platform API: it speaks plain JSON, not `application/vnd.heroku+json`.
HC_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
AUTHORIZE_ENVIRONMENTS = ("production", "sandbox", "custom")
MAX_DISCOVERY_PAGES = 50

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
        (`GET /connections?app=...&resource_name=...` on hc-central, every page)."""
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
            page = self._transport.request_model(DiscoveryPage, "GET", url, params=params)
            for ref in page.results:
                refs.setdefault(ref.id, ref)
            # `next` is a complete URL (query included); a relative one is resolved as a browser would.
            url = urljoin(self.base_url + "/", page.next) if page.next else None
            params = None
        return list(refs.values())

    def find_connection(self, app: str, resource_name: str | None = None) -> ConnectionRef:
        """The one connection of `app` (and add-on `resource_name`), linking first if needed.

        Discovery is empty until the user is on the add-on's access list, so on an empty answer
        this links and asks again, as the CLI plugin does.
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
        """The connection with its mappings and their states (`?deep=true`)."""
        url = ref.detail_url or self._url(ref, "connections/{id}", id=ref.id)
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
        self, ref: ConnectionRef, mapping_id: str, config: ConfigLike
    ) -> Mapping | None:
        """(UNSAFE, body unconfirmed) Replace a mapping's config, e.g. to add fields.

        `config` is the whole config with the mapping's current `revision` (read it with
        get_mapping); HC sets `applied_at`, so it is not sent.
        """
        payload = _config_payload(config)
        if payload.get("revision") is None:
            raise ValueError("config.revision must hold the mapping's current revision")
        payload.pop("applied_at", None)
        url = self._url(ref, "mappings/{id}", id=mapping_id)
        return self._maybe_mapping(
            self._transport.request("PUT", url, json={"config": payload}, idempotent=False), "PUT"
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
