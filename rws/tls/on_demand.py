"""On-demand TLS (Caddy's `tls { on_demand }`): a name with no certificate whose automation
policy is on-demand gets one during its first handshake, which waits for it.

Before obtaining, the `ask` endpoint (or the `http` permission module's) is asked
`GET <url>?domain=<name>` (10 s, no redirects): only a 2xx allows it. Caddy 2.6's
`rate_limit` (`burst` certificates per `interval`) bounds how many are obtained; a name
that failed waits before it is tried again (the pauses of rws.tls.automatic). Certificates
obtained here are stored as any managed certificate and kept in memory for the config's
life; a later handshake finds them in storage. A certificate due for renewal is renewed
in the background while the current one serves.

Each process obtains for its own handshakes, workers included; the storage lock makes
processes sharing storage place one order per name.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
import urllib.parse
from dataclasses import replace
from typing import Any


from rws.tls.authority import LocalAuthority
from rws.tls.automatic import (RETRY_PAUSES, Wanted, in_thread, local_certificate, obtain_certificate, policy_for,
                               stored_acme_certificates, wanted_for)
from rws.tls.certificates import Certificate
from rws.tls.challenges import Challenges
from rws.tls.names import qualifies_for_cert

log = logging.getLogger(__name__)

ASK_TIMEOUT = 10.0
MAX_PENDING = 32  # names being obtained at once; a handshake for one more fails at once
MAX_REMEMBERED = 10_000  # names whose certificate or failure is kept in memory
_HOSTNAME = re.compile(r"(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


class OnDemand:
    def __init__(self, tls_app: Any, challenges: Challenges, authority: LocalAuthority) -> None:
        self.tls_app = tls_app
        config = tls_app.automation.on_demand if tls_app.automation is not None else None
        permission = config.permission if config is not None else None
        self.ask = (config.ask if config is not None else "") or (
            permission.config.endpoint if permission is not None and permission.id.endswith(".http") else "")
        limit = config.rate_limit if config is not None else None
        self.limit = (limit.burst, limit.interval) if limit is not None and limit.burst and limit.interval else None
        self.started: collections.deque[float] = collections.deque()  # when recent issuances started
        self.challenges = challenges
        self.authority = authority
        self.certificates: dict[str, Certificate] = {}
        self.pending: dict[str, asyncio.Task[Certificate | None]] = {}
        self.failures: dict[str, tuple[int, float]] = {}  # name -> (failures in a row, retry after)
        if not self.ask:
            log.warning("on-demand TLS without an 'ask' endpoint: any name pointed at this server gets a "
                        "certificate requested")

    def covers(self, name: str) -> bool:
        """Whether `name` is a host name (an SNI can be anything) of an on-demand policy."""
        if not name or len(name) > 253 or not _HOSTNAME.fullmatch(name):
            return False
        policy = policy_for(name, self.tls_app)
        return policy is not None and policy.on_demand and qualifies_for_cert(name)

    async def certificate(self, name: str) -> Certificate | None:
        """The certificate for `name`: in memory, in storage, or obtained now; None when it
        may not or could not be had."""
        cert = self.certificates.get(name)
        wanted = wanted_for(name, policy_for(name, self.tls_app))
        if wanted is None:
            return None
        if cert is None:
            cert = await in_thread(self._stored, wanted)
        if cert is not None:
            _remember(self.certificates, name, cert)
            wanted = replace(wanted, current=cert)
            if wanted.due() and name not in self.pending:
                self._start(wanted)  # renewed in the background; this one serves meanwhile
            return cert
        task = self.pending.get(name)
        if task is None:
            if len(self.pending) >= MAX_PENDING:
                log.warning("too many on-demand certificates being obtained; refused", extra={"server_name": name})
                return None
            task = self._start(wanted)
        return await asyncio.shield(task)

    def _start(self, wanted: Wanted) -> asyncio.Task[Certificate | None]:
        task = asyncio.get_running_loop().create_task(self._obtain(wanted))
        self.pending[wanted.name] = task
        task.add_done_callback(lambda _: self.pending.pop(wanted.name, None))
        return task

    def _stored(self, wanted: Wanted) -> Certificate | None:
        if not wanted.issuers:
            return local_certificate(wanted.name, self.challenges.storage, self.authority, issue=False)
        return stored_acme_certificates([wanted], self.challenges.storage)[0].current

    async def _obtain(self, wanted: Wanted) -> Certificate | None:
        name, now = wanted.name, time.monotonic()
        failures, retry_after = self.failures.get(name, (0, 0.0))
        if now < retry_after:
            log.info("on-demand certificate failed recently; not trying yet", extra={"server_name": name})
            return None
        if self.ask and not await in_thread(self._allowed, name):
            return None
        if self.limit is not None:
            burst, interval = self.limit
            while self.started and self.started[0] < now - interval:
                self.started.popleft()
            if len(self.started) >= burst:
                log.warning("on-demand certificate rate limit reached", extra={"server_name": name})
                return None
            self.started.append(now)
        log.info("obtaining on-demand certificate", extra={"server_name": name})
        cert: Certificate | None
        try:
            if wanted.issuers:
                cert = await in_thread(obtain_certificate, wanted, self.challenges)
            else:
                cert = await in_thread(local_certificate, name, self.challenges.storage, self.authority, True)
        except Exception as exc:  # the CA refused or can't be reached: this handshake fails
            pause = RETRY_PAUSES[min(failures, len(RETRY_PAUSES) - 1)]
            _remember(self.failures, name, (failures + 1, time.monotonic() + pause))
            log.error("could not get an on-demand certificate", extra={"server_name": name, "error": str(exc),
                                                                       "retrying_after": pause})
            return None
        self.failures.pop(name, None)
        if cert is not None:
            _remember(self.certificates, name, cert)
        return cert

    def _allowed(self, name: str) -> bool:
        import requests  # (imported when first needed: see rws.tls.acme_issuer)

        url = urllib.parse.urlsplit(self.ask)
        query = [(k, v) for k, v in urllib.parse.parse_qsl(url.query, keep_blank_values=True) if k != "domain"]
        target = url._replace(query=urllib.parse.urlencode([*query, ("domain", name)])).geturl()
        try:
            answer = requests.get(target, timeout=ASK_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            log.error("on-demand permission check failed", extra={"server_name": name, "error": str(exc)})
            return False
        if not 200 <= answer.status_code < 300:
            log.info("on-demand certificate not allowed", extra={"server_name": name, "status": answer.status_code})
            return False
        return True


def _remember(memory: dict[str, Any], name: str, value: Any) -> None:
    """Keep `value` for `name`, forgetting everything once `MAX_REMEMBERED` names are kept
    (storage still has the certificates)."""
    if len(memory) >= MAX_REMEMBERED and name not in memory:
        memory.clear()
    memory[name] = value
