"""The outbox collection: requests store mail and account jobs here, the relay
sends the mail and runs the jobs.

Items are claimed with ``find_one_and_update`` and a lease, so two processes never
send one mail twice, and a crashed process's items come back after the lease.

Mail bodies are sealed (encrypted) at rest: they hold activation codes and reset
links, which the users collection keeps only as keyed hashes. Sent and failed items
are removed by a TTL index after the retention period.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import ASCENDING, ReturnDocument

from common.mail import OutgoingMail
from common.outbox import Claimed
from users.adapters.mongo import atomic
from users.domain import AccountJob

PENDING, SENT, FAILED = "pending", "sent", "failed"
OutboxItem = OutgoingMail | AccountJob


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class Sealer(Protocol):
    def seal(self, plain: str) -> str: ...

    def unseal(self, sealed: str) -> str | None: ...


class MongoOutbox:
    def __init__(
        self,
        database: Any,
        *,
        sealer: Sealer,
        lease_seconds: float = 60.0,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collection = database["outbox"]
        self.sealer = sealer
        self.lease_seconds = lease_seconds
        self.retention_seconds = retention_days * 86400
        self.clock = clock

    def ensure_indexes(self) -> None:
        self.collection.create_index(
            [("status", ASCENDING), ("due_at", ASCENDING)], name="outbox_due"
        )
        # Only finished items carry ``purge_at``: pending mail is never dropped.
        self.collection.create_index(
            [("purge_at", ASCENDING)], name="outbox_purge", expireAfterSeconds=0
        )

    def add(self, mail: OutgoingMail) -> str:
        body = self.sealer.seal(json.dumps({"text": mail.text, "html": mail.html}))
        return self._insert({"mail": {"to": mail.to, "subject": mail.subject, "sealed": body}})

    def add_job(self, job: AccountJob) -> str:
        return self._insert({"job": {"kind": job.kind, "identifier": job.identifier}})

    def _insert(self, item: dict[str, Any]) -> str:
        now = _ms(self.clock())
        result = self.collection.insert_one(
            {
                **item,
                "status": PENDING,
                "attempts": 0,
                "due_at": now,
                "lease_until": 0,
                "created_at": now,
            }
        )
        return str(result.inserted_id)

    def claim_due(self, limit: int) -> Sequence[Claimed[OutboxItem]]:
        claimed: list[Claimed[OutboxItem]] = []
        for _ in range(limit):
            now = _ms(self.clock())
            with atomic(self.collection.database):
                doc = self.collection.find_one_and_update(
                    {"status": PENDING, "due_at": {"$lte": now}, "lease_until": {"$lte": now}},
                    {
                        "$set": {"lease_until": now + _ms(self.lease_seconds)},
                        "$inc": {"attempts": 1},
                    },
                    sort=[("due_at", ASCENDING)],
                    return_document=ReturnDocument.AFTER,
                )
            if doc is None:
                break
            payload = self._open(doc)
            if payload is None:
                self.mark_failed(str(doc["_id"]), "sealed body unreadable: was the key changed?")
                continue
            claimed.append(
                Claimed(id=str(doc["_id"]), attempts=int(doc["attempts"]), payload=payload)
            )
        return claimed

    def mails_to(self, to: str) -> list[OutgoingMail]:
        """Every stored mail to ``to``, oldest first, opened (for support and tests)."""
        docs = self.collection.find({"mail.to": to}).sort("_id", ASCENDING)
        return [mail for doc in docs if isinstance(mail := self._open(doc), OutgoingMail)]

    def _open(self, doc: dict[str, Any]) -> OutboxItem | None:
        if "job" in doc:
            return AccountJob(kind=doc["job"]["kind"], identifier=doc["job"]["identifier"])
        mail = doc["mail"]
        if "sealed" in mail:
            opened = self.sealer.unseal(mail["sealed"])
            if opened is None:
                return None
            body = json.loads(opened)
        else:  # stored before bodies were sealed
            body = {"text": mail["text"], "html": mail.get("html")}
        return OutgoingMail(
            to=mail["to"], subject=mail["subject"], text=body["text"], html=body["html"]
        )

    def _purge_at(self) -> datetime:
        return datetime.fromtimestamp(self.clock() + self.retention_seconds, UTC)

    def _finish(self, item_id: str, changes: dict[str, Any]) -> None:
        from bson import ObjectId

        self.collection.update_one({"_id": ObjectId(item_id)}, {"$set": changes})

    def mark_done(self, item_id: str) -> None:
        self._finish(
            item_id,
            {
                "status": SENT,
                "sent_at": _ms(self.clock()),
                "lease_until": 0,
                "purge_at": self._purge_at(),
            },
        )

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None:
        due = _ms(self.clock() + delay_seconds)
        self._finish(item_id, {"due_at": due, "lease_until": 0, "last_error": error[:500]})

    def mark_failed(self, item_id: str, error: str) -> None:
        self._finish(
            item_id,
            {
                "status": FAILED,
                "lease_until": 0,
                "last_error": error[:500],
                "purge_at": self._purge_at(),
            },
        )

    def pending_count(self) -> int:
        return int(self.collection.count_documents({"status": PENDING}))

    def pending_jobs(self) -> int:
        return int(self.collection.count_documents({"status": PENDING, "job": {"$exists": True}}))
