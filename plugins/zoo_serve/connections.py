"""What one connection may hold of the server, as a production server bounds it: the request line and
headers must arrive within ``read_timeout`` seconds (the body too: zoo_serve.app), at most
``max_connections`` connections at once (kept below the process's file-descriptor limit), and a
flood of one kind of error is one log line per minute, not one per connection."""

from __future__ import annotations

import logging
import resource
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

from zoo_serve.specs import Limits

RESERVED_FDS = 64  # descriptors kept for what the server opens besides connections (weights, logs, the store)
LOG_INTERVAL = 60.0  # seconds in which one kind of error is logged once


class Timed(H11Protocol):
    """uvicorn's h11 protocol, with a deadline for each request's line and headers: a connection
    that has not sent them ``read_timeout`` seconds after it opened, or after its last answer, is
    closed (uvicorn itself waits for them forever)."""

    read_timeout = Limits.read_timeout

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._expect_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._expect_request()

    def _expect_request(self) -> None:
        self.loop.call_later(self.read_timeout, self._late, self.cycle)

    def _late(self, cycle) -> None:
        if self.cycle is cycle and not self.transport.is_closing():  # no request's headers came since
            self.transport.close()


def server_config(limits: Limits) -> dict:
    """uvicorn's settings for a server with these limits (its protocol set to :class:`Timed`)."""
    Timed.read_timeout = limits.read_timeout
    return {"log_level": "warning", "access_log": False, "http": Timed, "timeout_keep_alive": 5,
            "limit_concurrency": connection_cap(limits.max_connections),
            "timeout_graceful_shutdown": int(limits.timeout) + 5}


def connection_cap(wanted: int) -> int:
    """``wanted`` connections, or fewer: the soft file-descriptor limit is raised to the hard one,
    and the connections stay RESERVED_FDS below it (past it accept() fails and asyncio logs each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - RESERVED_FDS)) if soft != resource.RLIM_INFINITY else wanted


class OncePerInterval(logging.Filter):
    """Lets one record of each kind (its logger, level and message template) through per
    ``interval`` seconds; the next one through says how many were held back."""

    def __init__(self, interval: float = LOG_INTERVAL, clock=time.monotonic):
        super().__init__()
        self.interval, self.clock = interval, clock
        self.kinds: dict[tuple, list] = {}  # kind -> [when last let through, held back since]

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg)[:200])
        now = self.clock()
        seen = self.kinds.get(kind)
        if seen is not None and now - seen[0] < self.interval:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = f"{record.msg} ({seen[1]:,} more like it in the last {now - seen[0]:.0f} s)"
        if len(self.kinds) > 1000:  # kinds are templates; this bounds a stream of unique ones
            self.kinds.clear()
        self.kinds[kind] = [now, 0]
        return True


def quiet_floods() -> None:
    """Install :class:`OncePerInterval` on the loggers a flood of connections writes to."""
    once = OncePerInterval()
    for name in ("uvicorn.error", "asyncio", "uvicorn"):
        logging.getLogger(name).addFilter(once)
