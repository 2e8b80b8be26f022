"""The local HTTP servers' base (the sandbox and the Slack stand-in)."""

from __future__ import annotations

import socket
import sys
from http.server import ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-request (a process killed at the end of a rehearsal) is
    normal here, not an error worth a traceback."""

    daemon_threads = True

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
