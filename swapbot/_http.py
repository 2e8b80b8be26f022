"""The local HTTP servers' base (the sandbox and the Slack stand-in)."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a process killed at the end of a rehearsal) is
    normal here, not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
