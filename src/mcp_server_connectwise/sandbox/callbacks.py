"""The sandbox calls back: ConnectWise's callback deliveries for the writes made to it, and its signing key.

After a write, each active registration (`/system/callbacks`) it matches gets a delivery in ConnectWise's shape
(API.md): `MessageId`, `FromUrl`, `CompanyId`, `MemberId` (who wrote), `Action`, `Type`, `ID`, `Entity` (the
record as a JSON string; null on delete), `Metadata.key_url`, `CallbackObjectRecId`; signed in
`x-content-signature` with the sandbox's signing key, which `GET key_url` answers. A delivery not answered 2xx
within `callback_timeout` seconds is retried after each of `callback_retry_delays` (ConnectWise: 5 s, then at
2 s and 4 s), and a registration whose deliveries have failed for 3 days is disabled (`inactiveFlag`).

What matches ([I] where ConnectWise is not public):
- a ticket's add, change or delete: type `ticket` registrations of level owner (objectId 1), of its board,
  its status or the ticket itself; [I] project, phase and integrator-tag levels match nothing here;
- [I] a note's add, change or delete: the same, as its ticket `updated` (notes have no callback type), with
  the ticket as it is then; a ticket's initial notes are part of its creation and call back nothing more;
- [I] a time entry's add, change or delete: type `time` registrations of level owner;
- not a write with `skipCallback` (a ticket body, or a PATCH of it), nor, for a registration with
  `isSelfSuppressedFlag`, a write by the member that registered it.

[I] Deliveries go only to loopback URLs (the sandbox has fixed, published keys and made-up data), one at a time
per registration in the order of the writes (a failing one holds back those behind it, as it is retried);
ConnectWise appends the record's id to the registered URL. `deliveries` records each one for the tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx2

from mcp_server_connectwise.connectwise.callbacks import SIGNATURE_HEADER, signature
from mcp_server_connectwise.connectwise.hosts import is_loopback_host
from mcp_server_connectwise.sandbox.settings import CODEBASE, SandboxSettings
from mcp_server_connectwise.sandbox.store import Record, Store
from mcp_server_connectwise.sandbox.tables import TABLES

logger = logging.getLogger(__name__)

# The key URL's path, under the site's origin (the recorded payloads' own, codebase and doubled slash included).
KEY_PATH = f"/{CODEBASE}/system/callbackkey/index.rails"
DISABLED_AFTER_SECONDS = 3 * 24 * 3600  # of failures (API.md)
_TICKET_LEVELS = {"board": ("board", "id"), "status": ("status", "id")}


@dataclass
class Delivery:
    """One callback the sandbox sent, or tried to."""

    callback_id: int
    url: str
    payload: dict[str, Any]
    attempts: int = 0
    status: int | None = None  # of the last attempt; None: no answer
    outcome: str = "pending"  # delivered, failed, not_loopback


class CallbackSender:
    """Delivers the callbacks of one sandbox's writes (`changed`), and answers its signing key."""

    def __init__(self, store: Store, settings: SandboxSettings, base_url: str) -> None:
        self.store = store
        self.settings = settings
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.from_url = parts.netloc
        self.key_id = str(uuid.uuid4())
        self.signing_key = secrets.token_urlsafe(32)
        self.deliveries: list[Delivery] = []
        self._queues: dict[int, asyncio.Queue[Delivery]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._failing_since: dict[int, float] = {}
        self._http: httpx2.AsyncClient | None = None
        self.clock = time.time

    @property
    def key_url(self) -> str:
        query = urlencode({"companyName": self.settings.company, "id": self.key_id})
        return f"{self.origin}{KEY_PATH}?{query}"

    def rotate_key(self) -> None:
        """A new signing key under the same key URL (receivers holding the old one must fetch it again)."""
        self.signing_key = secrets.token_urlsafe(32)

    def key_answer(self, company: str | None, key_id: str | None) -> dict[str, str] | None:
        """What `GET key_url` answers: the key, or None for a company or id the sandbox does not have."""
        if (company or "").casefold() != self.settings.company.casefold() or key_id != self.key_id:
            return None
        return {"signing_key": self.signing_key}

    # --- after a write ---------------------------------------------------------------------------------

    def changed(self, table: str, action: str, record: Record, actor: str, *, skip: bool = False) -> None:
        """A write of `record` in `table` by `actor` (`action`: added, updated, deleted) has been made."""
        if skip:
            return
        if table == "notes":
            parent = TABLES["notes"].parent
            ticket = self.store["tickets"].get(parent.id_of(record)) if parent else None
            if ticket is not None:
                self._send("ticket", "updated", ticket, actor)
        elif table == "tickets":
            self._send("ticket", action, record, actor)
        elif table == "timeEntries":
            self._send("time", action, record, actor)

    def _matches(self, callback: Record, kind: str, record: Record, actor: str) -> bool:
        if callback.get("inactiveFlag") or str(callback.get("type", "")).lower() != kind:
            return False
        if callback.get("isSelfSuppressedFlag"):
            member = self.store["members"].get(callback.get("memberId", 0))
            if member is not None and member.get("identifier", "").casefold() == actor.casefold():
                return False
        level = str(callback.get("level", "")).lower()
        if level == "owner":
            return True
        if kind != "ticket":
            return False
        if level == "ticket":
            return callback.get("objectId") == record["id"]
        if level in _TICKET_LEVELS:
            reference, key = _TICKET_LEVELS[level]
            return callback.get("objectId") == (record.get(reference) or {}).get(key)
        return False

    def _send(self, kind: str, action: str, record: Record, actor: str) -> None:
        entity = None if action == "deleted" else json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        for callback in list(self.store["callbacks"].values()):
            if not self._matches(callback, kind, record, actor):
                continue
            payload = {
                "MessageId": str(uuid.uuid4()),
                "FromUrl": self.from_url,
                "CompanyId": self.settings.company,
                "MemberId": actor,
                "Action": action,
                "Type": kind,
                "ID": record["id"],
                "Entity": entity,
                "Metadata": {"key_url": self.key_url},
                "CallbackObjectRecId": callback["id"],
            }
            self._queue(Delivery(callback["id"], f"{callback.get('url', '')}{record['id']}", payload))

    def _queue(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)
        if not is_loopback_host(urlsplit(delivery.url).hostname or ""):
            delivery.outcome = "not_loopback"
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a write outside any event loop (a test's direct call): nothing can be sent
            delivery.outcome = "failed"
            return
        queue = self._queues.get(delivery.callback_id)
        if queue is None:
            queue = self._queues[delivery.callback_id] = asyncio.Queue()
            worker = loop.create_task(self._deliver_in_order(queue))
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        queue.put_nowait(delivery)

    async def _deliver_in_order(self, queue: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await queue.get()
            try:
                await self._deliver(delivery)
            finally:
                queue.task_done()

    async def _deliver(self, delivery: Delivery) -> None:
        body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        headers = {"content-type": "application/json", SIGNATURE_HEADER: signature(self.signing_key, body)}
        for delay in (0.0, *self.settings.callback_retry_delays):
            await asyncio.sleep(delay)
            delivery.attempts += 1
            try:
                response = await self._client().post(
                    delivery.url, content=body, headers=headers, timeout=self.settings.callback_timeout
                )
                delivery.status = response.status_code
                if response.is_success:
                    delivery.outcome = "delivered"
                    self._failing_since.pop(delivery.callback_id, None)
                    return
            except httpx2.HTTPError:
                delivery.status = None
        delivery.outcome = "failed"
        self._failed(delivery.callback_id)

    def _failed(self, callback_id: int) -> None:
        since = self._failing_since.setdefault(callback_id, self.clock())
        callback = self.store["callbacks"].get(callback_id)
        if callback is not None and self.clock() - since >= DISABLED_AFTER_SECONDS:
            self.store.put("callbacks", {**callback, "inactiveFlag": True})
            logger.info("sandbox: callback %d disabled after 3 days of failed deliveries", callback_id)

    def _client(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(trust_env=False)  # loopback only: no proxy has any business here
        return self._http

    async def drain(self) -> None:
        """Wait until every delivery queued so far has been made or given up on (for the tests)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def aclose(self) -> None:
        for worker in list(self._workers):
            worker.cancel()
        self._queues.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
