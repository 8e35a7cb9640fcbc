"""MX resolution as a mail server does it, on dnspython's async resolver.

`MxResolver.resolve_mail_host(domain, recorder)` asks MX, takes the most preferred exchange and
asks its A (and AAAA when enabled) record, timing each query as a DNS step. Concurrent queries
are capped like a mail server's "Concurrent Requests" setting; caching is off unless asked for.
"""

from __future__ import annotations

import asyncio
import contextlib

import dns.asyncresolver
import dns.exception
import dns.resolver

from loadtests.clients.steps import StepRecorder

__all__ = ["DnsLookupError", "MxResolver"]


class DnsLookupError(LookupError):
    """The answer had nothing usable (no MX, no address)."""


class MxResolver:
    """One per scenario and process; safe to share between concurrent sessions."""

    def __init__(self, server: str, port: int, *, max_concurrent: int = 20, cache: bool = False,
                 timeout: float = 5.0, aaaa: bool = False) -> None:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [server]
        resolver.port = port
        resolver.cache = dns.resolver.Cache() if cache else None
        self._resolver = resolver
        self._timeout = timeout
        self._aaaa = aaaa
        self._max_concurrent = max_concurrent
        self._limit: asyncio.Semaphore | None = None

    async def _query(self, rec: StepRecorder, qname: str, rdtype: str) -> dns.resolver.Answer:
        if self._limit is None:  # created on the loop, at first use
            self._limit = asyncio.Semaphore(self._max_concurrent)
        async with self._limit:
            return await rec.step(
                rdtype, self._resolver.resolve(qname, rdtype, lifetime=self._timeout)
            )

    async def resolve_mail_host(self, domain: str, rec: StepRecorder) -> tuple[str, list[str]]:
        """(exchange name, its addresses) for `domain`; raises on failure (already recorded)."""
        answer = await self._query(rec, domain, "MX")
        exchanges = sorted(answer, key=lambda r: r.preference)
        if not exchanges:
            raise DnsLookupError(f"no MX for {domain}")
        host = exchanges[0].exchange.to_text(omit_final_dot=True)
        addresses = [r.address for r in await self._query(rec, host, "A")]
        if self._aaaa:
            with contextlib.suppress(dns.resolver.NoAnswer):
                addresses += [r.address for r in await self._query(rec, host, "AAAA")]
        if not addresses:
            raise DnsLookupError(f"no address for {host}")
        return host, addresses
