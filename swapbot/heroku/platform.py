"""Client for the few Heroku Platform API calls around the cutover
(https://devcenter.heroku.com/articles/platform-api-reference).

Add-ons (create `hc2`, remove an add-on), maintenance mode, formation (scale to 0 and back),
dynos (wait for them to stop, restart process types), config vars (read; set only by the
probe, to mark a scratch app) and the rate-limit budget.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Mapping as MappingABC
from typing import Any, TypeVar

import requests
from pydantic import BaseModel, SecretStr

from ._models import (
    Addon,
    AddonAttachment,
    App,
    Dyno,
    Formation,
    FormationUpdate,
    config_vars_from,
)
from ._transport import (
    BaseClient,
    build_url,
    invalid_response,
    json_body,
    parse,
)

__all__ = ["DEFAULT_API_URL", "PLATFORM_ACCEPT", "PlatformClient"]

DEFAULT_API_URL = "https://api.heroku.com"
# Without it the Platform API answers 406 not_acceptable.
PLATFORM_ACCEPT = "application/vnd.heroku+json; version=3"
MAX_PAGES = 50

M = TypeVar("M", bound=BaseModel)


class PlatformClient(BaseClient):
    """Heroku Platform API over one session. `create_addon` and `delete_addon` are not safe to
    repeat: after a TransportError or ServerError from either, list the add-ons before trying
    again."""

    DEFAULT_URL = DEFAULT_API_URL
    HEADERS = {"Accept": PLATFORM_ACCEPT}

    # --- app -----------------------------------------------------------------------------------

    def app(self, app: str) -> App:
        return self._transport.request_model(App, "GET", self._url("apps/{app}", app=app))

    def set_maintenance(self, app: str, on: bool) -> App:
        """Maintenance mode stops web routing only; workers and Scheduler keep running."""
        url = self._url("apps/{app}", app=app)
        return self._transport.request_model(App, "PATCH", url, json={"maintenance": bool(on)})

    # --- add-ons -------------------------------------------------------------------------------

    def list_addons(self, app: str) -> list[Addon]:
        return self._list(Addon, "apps/{app}/addons", app=app)

    def get_addon(self, app: str, addon: str) -> Addon:
        url = self._url("apps/{app}/addons/{addon}", app=app, addon=addon)
        return self._transport.request_model(Addon, "GET", url)

    def create_addon(
        self,
        app: str,
        *,
        plan: str,
        name: str | None = None,
        attachment_name: str | None = None,
        config: MappingABC[str, str] | None = None,
        confirm: str | None = None,
    ) -> Addon:
        """(UNSAFE) Provision an add-on, e.g. plan `herokuconnect:enterprise`. Poll `get_addon`
        until `state == "provisioned"`."""
        body: dict[str, Any] = {"plan": plan}
        if name:
            body["name"] = name
        if attachment_name:
            body["attachment"] = {"name": attachment_name}
        if config:
            body["config"] = dict(config)
        if confirm:
            body["confirm"] = confirm
        url = self._url("apps/{app}/addons", app=app)
        return self._transport.request_model(Addon, "POST", url, json=body, idempotent=False)

    def delete_addon(self, app: str, addon: str) -> Addon:
        """(UNSAFE) Remove an add-on (name or id). Heroku answers 200 with the add-on, its
        `state` `deprovisioned`; a repeat answers 404 (NotFound). Whether removing a Heroku
        Connect add-on drops its schema is unconfirmed (assumption `remove-addon-keeps-schema`):
        drop the schema separately."""
        url = self._url("apps/{app}/addons/{addon}", app=app, addon=addon)
        return self._transport.request_model(Addon, "DELETE", url, idempotent=False)

    def app_attachments(self, app: str) -> list[AddonAttachment]:
        """The add-ons attached to `app`, each under its config var prefix (DATABASE, …)."""
        return self._list(AddonAttachment, "apps/{app}/addon-attachments", app=app)

    def addon_attachments(self, addon: str) -> list[AddonAttachment]:
        """Every attachment of one add-on (name or id), in every app it is attached to: for a
        database, the apps that may write to it."""
        return self._list(AddonAttachment, "addons/{addon}/addon-attachments", addon=addon)

    # --- formation and dynos -------------------------------------------------------------------

    def formation(self, app: str) -> list[Formation]:
        return self._list(Formation, "apps/{app}/formation", app=app)

    def update_formation(
        self, app: str, updates: Iterable[FormationUpdate | MappingABC[str, Any]]
    ) -> list[Formation]:
        """Scale several process types in one call, e.g. `[FormationUpdate(type="web",
        quantity=0)]`."""
        items = [
            u if isinstance(u, FormationUpdate) else FormationUpdate.model_validate(dict(u))
            for u in updates
        ]
        if not items:
            raise ValueError("no formation updates given")
        url = self._url("apps/{app}/formation", app=app)
        body = {"updates": [item.payload() for item in items]}
        response = self._transport.request("PATCH", url, json=body)
        return self._models(Formation, response, "PATCH")

    def dynos(self, app: str) -> list[Dyno]:
        return self._list(Dyno, "apps/{app}/dynos", app=app)

    def restart_all_dynos(self, app: str) -> None:
        """Restarts every dyno of the app, the bot's own too if it runs there."""
        self._transport.request("DELETE", self._url("apps/{app}/dynos", app=app))

    def restart_process_type(self, app: str, process_type: str) -> None:
        url = self._url("apps/{app}/formations/{type}", app=app, type=process_type)
        self._transport.request("DELETE", url)

    def restart_dyno(self, app: str, dyno: str) -> None:
        url = self._url("apps/{app}/dynos/{dyno}", app=app, dyno=dyno)
        self._transport.request("DELETE", url)

    # --- config vars and rate limit ------------------------------------------------------------

    def config_vars(self, app: str) -> dict[str, SecretStr]:
        """All config vars; the values are secrets (DATABASE_URL among them)."""
        url = self._url("apps/{app}/config-vars", app=app)
        response = self._transport.request("GET", url)
        data = json_body(response, "GET")
        if not isinstance(data, dict):
            raise invalid_response(response, "GET", "config vars are not an object")
        return config_vars_from(data)

    def update_config_vars(self, app: str, values: MappingABC[str, str | None]) -> None:
        """Set config vars, a None value removing one (`PATCH /apps/{app}/config-vars`). Heroku
        answers with every config var; those are secrets, so the answer is not read. A config
        change is a new release: Heroku restarts the app's dynos. Safe to repeat."""
        if not values:
            raise ValueError("no config vars given")
        url = self._url("apps/{app}/config-vars", app=app)
        self._transport.request("PATCH", url, json=dict(values))

    def rate_limit_remaining(self) -> int:
        """Requests left in the account's bucket; this call does not spend one."""
        response = self._transport.request("GET", self._url("account/rate-limits"))
        data = json_body(response, "GET")
        remaining = data.get("remaining") if isinstance(data, dict) else None
        if not isinstance(remaining, int | float) or isinstance(remaining, bool):
            raise invalid_response(response, "GET", "the response has no remaining count")
        return int(remaining)

    # --- helpers -------------------------------------------------------------------------------

    def _url(self, template: str, **segments: object) -> str:
        return build_url(self.base_url, template, **segments)

    def _list(self, model: type[M], template: str, **segments: object) -> list[M]:
        """Every item of a list endpoint, following `Next-Range` while the answer is 206."""
        url = self._url(template, **segments)
        headers: dict[str, str] | None = None
        seen: set[str] = set()
        items: list[M] = []
        for _ in range(MAX_PAGES):
            response = self._transport.request("GET", url, headers=headers)
            items.extend(self._models(model, response, "GET"))
            next_range = response.headers.get("Next-Range")
            if response.status_code != 206 or not next_range or next_range in seen:
                break
            seen.add(next_range)
            headers = {"Range": next_range}
        return items

    @staticmethod
    def _models(model: type[M], response: requests.Response, method: str) -> list[M]:
        data = json_body(response, method)
        if data is None:
            return []
        if not isinstance(data, list):
            raise invalid_response(response, method, f"expected a list of {model.__name__}")
        return [parse(model, item, response, method) for item in data]
