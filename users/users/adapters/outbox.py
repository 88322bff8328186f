"""The outbox collection: requests store mail and account jobs here, the relay
sends the mail and runs the jobs.

Items are claimed with ``find_one_and_update`` and a lease, so two processes never
send one mail twice, and a crashed process's items come back after the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from pymongo import ASCENDING, ReturnDocument

from common.mail import OutgoingMail
from common.outbox import Claimed
from users.adapters.mongo import atomic
from users.domain import AccountJob

PENDING, SENT, FAILED = "pending", "sent", "failed"
OutboxItem = OutgoingMail | AccountJob


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class MongoOutbox:
    def __init__(
        self,
        database: Any,
        *,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collection = database["outbox"]
        self.lease_seconds = lease_seconds
        self.clock = clock

    def ensure_indexes(self) -> None:
        self.collection.create_index(
            [("status", ASCENDING), ("due_at", ASCENDING)], name="outbox_due"
        )

    def add(self, mail: OutgoingMail) -> str:
        return self._insert(
            {"mail": {"to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html}}
        )

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
            claimed.append(
                Claimed(id=str(doc["_id"]), attempts=int(doc["attempts"]), payload=_payload(doc))
            )
        return claimed

    def _finish(self, item_id: str, changes: dict[str, Any]) -> None:
        from bson import ObjectId

        self.collection.update_one({"_id": ObjectId(item_id)}, {"$set": changes})

    def mark_done(self, item_id: str) -> None:
        self._finish(item_id, {"status": SENT, "sent_at": _ms(self.clock()), "lease_until": 0})

    def mark_retry(self, item_id: str, delay_seconds: float, error: str) -> None:
        due = _ms(self.clock() + delay_seconds)
        self._finish(item_id, {"due_at": due, "lease_until": 0, "last_error": error[:500]})

    def mark_failed(self, item_id: str, error: str) -> None:
        self._finish(item_id, {"status": FAILED, "lease_until": 0, "last_error": error[:500]})

    def pending_count(self) -> int:
        return int(self.collection.count_documents({"status": PENDING}))

    def pending_jobs(self) -> int:
        return int(self.collection.count_documents({"status": PENDING, "job": {"$exists": True}}))


def _payload(doc: dict[str, Any]) -> OutboxItem:
    if "job" in doc:
        return AccountJob(kind=doc["job"]["kind"], identifier=doc["job"]["identifier"])
    mail = doc["mail"]
    return OutgoingMail(
        to=mail["to"], subject=mail["subject"], text=mail["text"], html=mail["html"]
    )
