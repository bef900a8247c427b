"""nigraan's waitress connection: what waitress itself does not guard against or says in plain
text.

- A deadline for the request headers. Waitress's `channel_timeout` restarts at every byte, so a
  client sending one byte every few seconds holds a connection for ever, and a hundred of them
  fill `connection_limit`: no tablet gets an answer. Here a connection that has not sent a
  whole request head within `server.header_timeout` of connecting (or of its last answer) is
  closed; when the server is nearly full, within PRESSED_TIMEOUT, and uploads that crawl
  (under PRESSED_MIN_RATE) are closed too.
- A cap on the connections one address may hold (`server.connections_per_address`), so one
  machine cannot take every slot with slow uploads either.
- The errors waitress answers by itself (malformed request, headers too large, unsupported
  transfer coding, body over its limit) as OpenRosa messages, the only kind Collect shows.
- What the app may trust about a request that waitress alone knows: the local address the
  connection reached (for absolute URLs when listening on every interface) and when the
  request's headers had arrived (Digest nonces are judged by then, not after a long upload).
"""

from __future__ import annotations

import logging
import time

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask, WSGITask

from server import problems
from server.openrosa_xml import openrosa_response

log = logging.getLogger(__name__)

LOCAL_ADDRESS = "nigraan.local_address"  # (host, port) the connection was accepted on
HEADERS_AT = "nigraan.headers_at"  # time.time() when the request's headers were complete


class _RequestParser(HTTPRequestParser):
    headers_at: float | None = None

    def received(self, data):
        consumed = super().received(data)
        if self.headers_at is None and (self.headers_finished or self.completed):
            self.headers_at = time.time()
        return consumed


def _no_close() -> None:
    return None


class _AppTask(WSGITask):
    def build_response_header(self):
        """Waitress ends an HTTP/1.1 connection after every response without Content-Length,
        a 204 or 304 included, which must not have one (RFC 9110 8.6) and are complete as
        sent. OpenRosa's HEAD /submission is answered 204, so each upload cost Collect a new
        connection for its POST (on a phone network, a new TLS handshake too). Such a
        response keeps the connection unless the client or waitress wants it closed."""
        keep = (
            not self.has_body
            and self.version == "1.1"
            and not self.close_on_finish
            and self.request.headers.get("CONNECTION", "").lower() != "close"
        )
        if not keep:
            return super().build_response_header()
        self.set_close_on_finish = _no_close  # only while waitress decides, for this response
        try:
            return super().build_response_header()
        finally:
            del self.set_close_on_finish

    def get_environment(self):
        environ = super().get_environment()
        environ[LOCAL_ADDRESS] = self.channel.local_address
        environ[HEADERS_AT] = getattr(self.request, "headers_at", None) or time.time()
        return environ


class _OpenRosaErrorTask(ErrorTask):
    """Waitress's own refusals, with an OpenRosa body instead of its plain text."""

    def execute(self):
        error = self.request.error
        problem = problems.refused_by_server(
            error.code, str(error.body), self.channel.max_submission_bytes
        )
        body = (
            ""
            if getattr(self.request, "command", "") == "HEAD"
            else openrosa_response(problem.message, error=True)
        ).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [
                ("Content-Type", "text/xml; charset=utf-8"),
                ("X-OpenRosa-Version", "1.0"),
                ("Content-Language", "en"),
            ]
        )
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """One client connection; `guarded_channel` sets the limits."""

    task_class = _AppTask
    error_task_class = _OpenRosaErrorTask
    parser_class = _RequestParser
    header_timeout = 10.0
    PRESSED_TIMEOUT = 2.0
    PRESSED_MIN_RATE = 1_000  # bytes a second; a 2G link carries several times that
    per_address = 20
    max_submission_bytes = 100_000_000
    _last_cap_warning = 0.0

    def __init__(self, server, sock, addr, adj, map=None):
        super().__init__(server, sock, addr, adj, map=map)
        self.waiting_since = time.monotonic()
        try:
            self.local_address = sock.getsockname()[:2]
        except OSError:
            self.local_address = None
        host = addr[0] if isinstance(addr, tuple) else addr
        held = sum(
            1
            for c in list(server.active_channels.values())
            if isinstance(c.addr, tuple) and c.addr[0] == host
        )
        if held > self.per_address:
            self.will_close = True  # closed on the next turn of the loop, nothing read
            now = time.monotonic()
            if now - GuardedChannel._last_cap_warning > 60:
                GuardedChannel._last_cap_warning = now
                log.warning(
                    "%s holds %d connections (server.connections_per_address is %d): "
                    "closing its new ones",
                    host,
                    held - 1,
                    self.per_address,
                )

    def readable(self):
        """Called by waitress's loop for every connection at least once a second: the place
        to close a connection that is too slow."""
        if not self.will_close and self._too_slow(time.monotonic()):
            self.will_close = True
            return False
        return super().readable()

    def _too_slow(self, now: float) -> bool:
        """Its request head is overdue: header_timeout, or PRESSED_TIMEOUT while the server is
        nearly full, so clients trickling from many addresses free their slots within seconds
        (a tablet sends its request head at once; an idle kept-alive connection reconnects).
        While nearly full, an upload averaging under PRESSED_MIN_RATE also gives way."""
        request = self.request
        if self.requests or self.total_outbufs_len:
            self.waiting_since = now  # serving or answering
            return False
        pressed = len(self.server.active_channels) >= 0.9 * self.adj.connection_limit
        if request is not None and request.headers_finished:
            self.waiting_since = now  # receiving a body
            if not pressed or request.headers_at is None:
                return False
            receiving = time.time() - request.headers_at
            return receiving > self.PRESSED_TIMEOUT and (
                request.body_bytes_received < self.PRESSED_MIN_RATE * receiving
            )
        deadline = (
            min(self.header_timeout, self.PRESSED_TIMEOUT) if pressed else (self.header_timeout)
        )
        return now - self.waiting_since > deadline


def guarded_channel(config) -> type[GuardedChannel]:
    """The channel class with this server's limits."""
    return type(
        "NigraanChannel",
        (GuardedChannel,),
        {
            "header_timeout": float(config["server.header_timeout"]),
            "per_address": int(config["server.connections_per_address"]),
            "max_submission_bytes": int(config["server.max_submission_bytes"]),
        },
    )
