"""The sandbox's HTTP surface: Heroku Connect (central and regional), the Platform API, and
`/_sandbox/` for what a person does in a browser or dashboard.

Each API lives under its own prefix so that the bot points at it with its two base URLs only:
`HEROKU_CONNECT_CENTRAL_URL=http://127.0.0.1:P/hc-central`, `HEROKU_API_URL=http://127.0.0.1:P/platform`;
discovery hands out `region_url=http://127.0.0.1:P/connect/virginia/` as Heroku would.
A path the real API does not have is a 404, as on Heroku; so is a real one the sandbox does not
play (docs/sandbox.md lists them).

This module is the one route table the server asks; the pieces live beside it:
- routing: the request, response and errors, and how a path finds its route;
- connect_records and connect_api: Heroku Connect's records and its endpoints;
- connect_diagnostics: HC's diagnose, notifications and Salesforce API version endpoints;
- platform_api: the Platform API endpoints;
- admin_api: the `/_sandbox/` endpoints.
"""

from __future__ import annotations

from swapbot.sandbox import admin_api, connect_api, connect_diagnostics, platform_api
from swapbot.sandbox.platform_api import default_features
from swapbot.sandbox.routing import (
    PLATFORM_ACCEPT,
    PREFIXES,
    REGION,
    ApiError,
    Handler,
    Request,
    Response,
    Route,
    bad_request,
    find_route,
    not_found,
    routes,
    user_for_token,
)

# The names server.py and scenarios.py read from here.
__all__ = [
    "PLATFORM_ACCEPT",
    "PREFIXES",
    "REGION",
    "ROUTES",
    "ApiError",
    "Handler",
    "Request",
    "Response",
    "Route",
    "bad_request",
    "default_features",
    "not_found",
    "resolve",
    "user_for_token",
]

ROUTES: list[Route] = [
    *routes(
        "hc-central",
        [
            ("POST", "/auth/{app}", connect_api.central_link),
            ("GET", "/connections", connect_api.central_discover),
        ],
    ),
    *routes(
        "connect",
        [
            ("GET", "/connections/{cid}", connect_api.connection_detail),
            ("PATCH", "/connections/{cid}", connect_api.connection_configure),
            ("POST", "/connections/{cid}/authorize_url", connect_api.connection_authorize_url),
            ("GET", "/connections/{cid}/actions/export", connect_api.connection_export),
            ("POST", "/connections/{cid}/actions/import", connect_api.connection_import),
            ("POST", "/connections/{cid}/actions/pause", connect_api.connection_pause),
            ("POST", "/connections/{cid}/actions/resume", connect_api.connection_resume),
            ("POST", "/connections/{cid}/actions/restart", connect_api.connection_restart),
            ("GET", "/connections/{cid}/errors", connect_api.connection_errors),
            (
                "GET",
                "/connections/{cid}/notifications",
                connect_diagnostics.connection_notifications,
            ),
            (
                "POST",
                "/connections/{cid}/notifications/acknowledge",
                connect_diagnostics.notifications_acknowledge,
            ),
            ("POST", "/connections/{cid}/validations", connect_diagnostics.connection_validate),
            (
                "GET",
                "/connections/{cid}/validations/{vid}",
                connect_diagnostics.connection_validation,
            ),
            ("GET", "/connections/{cid}/schema-diff", connect_diagnostics.connection_schema_diff),
            (
                "POST",
                "/connections/{cid}/actions/change-sf-api-version",
                connect_diagnostics.connection_change_api_version,
            ),
            ("GET", "/connections/{cid}/schemas/{object_name}", connect_api.connection_describe),
            ("GET", "/apps/{app}", connect_api.connect_app),
            ("POST", "/connections/{cid}/mappings", connect_api.mapping_create),
            ("GET", "/mappings/{mid}", connect_api.mapping_detail),
            ("PUT", "/mappings/{mid}", connect_api.mapping_edit),
            ("DELETE", "/mappings/{mid}", connect_api.mapping_delete),
            ("POST", "/mappings/{mid}/actions/reload", connect_api.mapping_reload),
            ("POST", "/mappings/{mid}/actions/abort", connect_api.mapping_abort),
            ("GET", "/mappings/{mid}/errors", connect_api.mapping_errors),
            ("GET", "/mappings/{mid}/validations", connect_diagnostics.mapping_validate),
        ],
    ),
    *routes(
        "platform",
        [
            ("GET", "/apps/{app}", platform_api.platform_app),
            ("PATCH", "/apps/{app}", platform_api.platform_app_update),
            ("GET", "/apps/{app}/addons", platform_api.platform_addons),
            ("GET", "/apps/{app}/addons/{addon}", platform_api.platform_addon),
            ("GET", "/addons/{addon}", platform_api.platform_addon_global),
            ("POST", "/apps/{app}/addons", platform_api.platform_addon_create),
            ("DELETE", "/apps/{app}/addons/{addon}", platform_api.platform_addon_delete),
            ("GET", "/apps/{app}/addon-attachments", platform_api.platform_app_attachments),
            ("GET", "/addons/{addon}/addon-attachments", platform_api.platform_addon_attachments),
            ("GET", "/apps/{app}/formation", platform_api.platform_formation),
            ("PATCH", "/apps/{app}/formation", platform_api.platform_formation_batch),
            ("PATCH", "/apps/{app}/formation/{ptype}", platform_api.platform_formation_one),
            ("GET", "/apps/{app}/dynos", platform_api.platform_dynos),
            ("DELETE", "/apps/{app}/dynos", platform_api.platform_restart_all),
            ("DELETE", "/apps/{app}/dynos/{dyno}", platform_api.platform_restart_dyno),
            ("DELETE", "/apps/{app}/formations/{ptype}", platform_api.platform_restart_type),
            ("GET", "/apps/{app}/config-vars", platform_api.platform_config_vars),
            ("PATCH", "/apps/{app}/config-vars", platform_api.platform_config_vars_update),
            ("GET", "/account/rate-limits", platform_api.platform_rate_limits),
        ],
    ),
    *routes(
        "admin",
        [
            ("GET", "/health", admin_api.admin_health),
            ("GET", "/oauth/authorize", admin_api.admin_oauth),
            ("POST", "/connections/{key}/mappings/{object_name}/abort", admin_api.admin_abort),
            ("POST", "/connections/{key}/settings", admin_api.admin_settings),
            ("GET", "/connections/{key}/settings", admin_api.admin_get_settings),
            ("POST", "/connections/{key}/diagnose", admin_api.admin_diagnose),
            (
                "POST",
                "/connections/{key}/mappings/{object_name}/state",
                admin_api.admin_mapping_state,
            ),
            ("GET", "/requests", admin_api.admin_requests),
            ("POST", "/faults", admin_api.admin_faults),
            ("GET", "/assumptions", admin_api.admin_assumptions),
            ("POST", "/assumptions", admin_api.admin_set_assumptions),
            ("POST", "/step", admin_api.admin_step),
        ],
    ),
]


def resolve(method: str, full_path: str) -> tuple[Route, dict[str, str], str]:
    """Find the route for a path; 404 for paths no API has, 405 for a known path's wrong method."""
    return find_route(ROUTES, method, full_path)
