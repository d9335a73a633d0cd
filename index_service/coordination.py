"""Who is the primary of a replica group: a fixed address, or an etcd lease.

* **Static** (``primary_address`` set, no ``coordinator``): the primary never changes; a follower
  whose primary dies keeps serving reads but the group takes no writes until it returns.
* **etcd** (``coordinator: http://host:2379[,...]``): every member registers
  ``/vitrine/index/<group>/members/<member>`` (its address) under its own lease, and the primary
  holds ``/vitrine/index/<group>/leader`` under that lease. When the key is gone (its holder died,
  hung or lost the network for the lease's TTL) a member whose log is at least as far as every
  reachable peer's creates it again in one transaction (only one can); the key's etcd
  ``create_revision`` is the new **term**. A primary that fails to renew its lease stops taking
  writes before the lease can have expired on the etcd side; and a deposed primary could not get
  a write acknowledged anyway, since the followers fetch from the new one. Talks to etcd's v3
  JSON gateway with ``etcd3gw`` (OpenStack's client) in a thread; with an ``https://`` endpoint
  and TLS on, the service's own certificate and CA authenticate it to etcd (mTLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlparse

log = logging.getLogger("vitrine.index.coordination")
PREFIX = "/vitrine/index"


class StaticCoordinator:
    def __init__(self, replication, primary_address: str):
        self.replication = replication
        self.primary_address = primary_address

    async def run(self) -> None:
        r = self.replication
        if self.primary_address == r.address:
            await r.become_primary(1)
        else:
            await r.become_follower(self.primary_address, 1)
        await asyncio.Event().wait()


class EtcdCoordinator:
    def __init__(self, replication, endpoints: str, ttl_s: int, tls=None):
        import etcd3gw

        self.replication = replication
        self.ttl = max(1, int(ttl_s))
        first = urlparse(endpoints.split(",")[0].strip())
        https = first.scheme == "https" and tls is not None  # mTLS with the service's own cert
        self.client = etcd3gw.client(
            host=first.hostname or "127.0.0.1",
            port=first.port or 2379,
            protocol=first.scheme or "http",
            timeout=max(1.0, self.ttl / 2),
            ca_cert=str(tls.ca_file) if https and tls.ca_file else None,
            cert_cert=str(tls.cert_file) if https and tls.cert_file else None,
            cert_key=str(tls.key_file) if https and tls.key_file else None,
        )
        group = replication.group
        self.leader_key = f"{PREFIX}/{group}/leader"
        self.members_prefix = f"{PREFIX}/{group}/members/"
        self.lease = None
        self.last_renewal = 0.0
        # A write is acknowledged only while the lease is surely alive on etcd's side too: a
        # primary paused (SIGSTOP, a long GC, a VM freeze) past that point may have been
        # replaced, and a follower that has not noticed yet could still acknowledge to it.
        replication.lease_valid = lambda: time.monotonic() - self.last_renewal < self.ttl * 0.6

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def _register(self) -> None:
        r = self.replication
        self.lease = await self._call(self.client.lease, self.ttl)
        await self._call(
            self.client.put, self.members_prefix + r.member, r.address, lease=self.lease
        )
        self.last_renewal = time.monotonic()

    async def _renew(self) -> str:
        """ "ok", "expired" (etcd no longer has the lease) or "error" (no answer in time)."""
        try:
            ttl = await self._call(self.lease.refresh)
        except Exception:  # etcd unreachable or slow: the lease may well be alive
            return "error"
        if ttl is None or int(ttl) <= 0:
            return "expired"
        self.last_renewal = time.monotonic()
        return "ok"

    async def _peers(self) -> list[str]:
        values = await self._call(self.client.get_prefix, self.members_prefix)
        return [v.decode() for v, _meta in values]

    async def step(self) -> None:
        """One look at the leader key: follow it, keep it, or try to take it."""
        r = self.replication
        if self.lease is None:
            await self._register()
        else:
            renewed = await self._renew()
            if renewed != "ok":
                if time.monotonic() - self.last_renewal > self.ttl * 0.6:
                    await r.step_down()  # the lease may expire any moment: no more writes
                if renewed == "expired":  # gone on etcd's side: join again under a new lease
                    with contextlib.suppress(Exception):
                        await self._register()
                return
        found = await self._call(self.client.get, self.leader_key, metadata=True)
        if found:
            address, meta = found[0]
            term, lease = int(meta["create_revision"]), int(meta.get("lease", 0))
            if lease == int(self.lease.id):
                await r.become_primary(term)
                return
            if address.decode() != r.address:
                await r.become_follower(address.decode(), term)
                return
            # The key names this address under another lease: this process's previous life
            # (killed, restarted at once). Nobody serves as that primary: free the key now.
            import etcd3gw.lease

            await self._call(etcd3gw.lease.Lease(lease, self.client).revoke)
        if r.role != 0:  # PRIMARY/FOLLOWER: the leader key vanished; stop writes meanwhile
            await r.step_down()
        if not await r.most_advanced(await self._peers()):
            return  # a peer's log is ahead: let it take over
        if await self._call(self.client.create, self.leader_key, r.address, lease=self.lease):
            log.info("won the election", extra={"group": r.group, "member": r.member})
            await self.step()

    async def run(self) -> None:
        period = max(0.1, self.ttl / 5)
        while True:
            try:
                await self.step()
            except Exception as exc:  # etcd down: keep the role until the lease says
                log.warning("coordinator step failed: %s", exc)
                if time.monotonic() - self.last_renewal > self.ttl * 0.6:
                    await self.replication.step_down()
            await asyncio.sleep(period)

    async def resign(self) -> None:
        """At shutdown: free the leader key at once (no wait for the lease to expire)."""
        if self.lease is not None:
            with contextlib.suppress(Exception):
                await self._call(self.lease.revoke)


def make_coordinator(replication, config):
    if not config.replica_group:
        return None
    if config.coordinator:
        return EtcdCoordinator(
            replication, config.coordinator, config.lease_ttl_s, config.client_tls()
        )
    return StaticCoordinator(replication, config.primary_address or replication.address)
