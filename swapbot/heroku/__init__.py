"""Clients for the Heroku Connect API v3 and the Heroku Platform API, over one transport seam.

    from swapbot.heroku import ConnectClient, PlatformClient

    hc = ConnectClient(settings.heroku_api_token, str(settings.heroku_connect_central_url))
    ref = hc.find_connection("acme-prod", "herokuconnect-angular-12345")
    connection = hc.get_connection(ref)

Every error is a `HerokuError` (tree in `_exceptions.py`); no error, repr or log line carries
the token.
"""

from ._exceptions import (
    BadRequest,
    Conflict,
    ConnectionNotFound,
    Forbidden,
    HerokuApiError,
    HerokuError,
    MultipleConnections,
    NotAcceptable,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    Unauthorized,
    UnprocessableEntity,
)
from ._models import (
    CONNECTION_ERROR_STATES,
    CONNECTION_OK_STATES,
    LOADING_STATES,
    MAPPING_ERROR_STATES,
    MAPPING_OK_STATES,
    MAPPING_TEMPORARY_STATES,
    SYNCED_STATES,
    Addon,
    AddonAttachment,
    App,
    Connection,
    ConnectionRef,
    ConnectionState,
    Counts,
    DiscoveryPage,
    Dyno,
    ErrorList,
    ExportDocument,
    ExportMapping,
    Formation,
    FormationUpdate,
    IndexSpec,
    LinkResult,
    Mapping,
    MappingConfig,
    MappingState,
    WriteError,
    mapping_state_group,
)
from ._transport import DEFAULT_TIMEOUT, RetryPolicy, Transport
from .assumptions import ASSUMPTIONS, Assumption
from .connect import ConnectClient
from .platform import PlatformClient

__all__ = [
    "ASSUMPTIONS",
    "CONNECTION_ERROR_STATES",
    "CONNECTION_OK_STATES",
    "DEFAULT_TIMEOUT",
    "LOADING_STATES",
    "MAPPING_ERROR_STATES",
    "MAPPING_OK_STATES",
    "MAPPING_TEMPORARY_STATES",
    "SYNCED_STATES",
    "Addon",
    "AddonAttachment",
    "App",
    "Assumption",
    "BadRequest",
    "Conflict",
    "Connection",
    "ConnectClient",
    "ConnectionNotFound",
    "ConnectionRef",
    "ConnectionState",
    "Counts",
    "DiscoveryPage",
    "Dyno",
    "ErrorList",
    "ExportDocument",
    "ExportMapping",
    "Forbidden",
    "Formation",
    "FormationUpdate",
    "HerokuApiError",
    "HerokuError",
    "IndexSpec",
    "LinkResult",
    "Mapping",
    "MappingConfig",
    "MappingState",
    "MultipleConnections",
    "NotAcceptable",
    "NotFound",
    "PlatformClient",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "Transport",
    "TransportError",
    "Unauthorized",
    "UnprocessableEntity",
    "WriteError",
    "mapping_state_group",
]
