"""The courses and enrolments services, over pooled clients carrying the internal key.

Learning only ever calls these two, and neither calls learning back except the
enrolment completion it is asked for, so no call loops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from decimal import Decimal
from typing import Any, Generic, TypeVar

import httpx

from common.errors import ApiError, UpstreamUnavailable
from common.http import ServiceClient
from learning.domain import CourseInfo, CourseNotFound

log = logging.getLogger(__name__)
V = TypeVar("V")


class TtlCache(Generic[V]):
    """A small per-process memo with an age limit. Only answers that are safe to be
    a few seconds old go in (a course's author and status, an access granted)."""

    def __init__(self, seconds: float, max_entries: int = 10_000) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get(
        self,
        key: Hashable,
        load: Callable[[], V | None],
        keep: Callable[[V], bool] = lambda _: True,
    ) -> V | None:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        if value is not None and self.seconds > 0 and keep(value):
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now + self.seconds, value)
        return value


def _call(
    client: ServiceClient, name: str, method: str, path: str, **kwargs: Any
) -> httpx.Response | None:
    """The answer, None on 404; a 503 envelope when the service is away or failing."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", extra={"upstream": name, "error": type(exc).__name__})
        raise UpstreamUnavailable() from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        log.warning("upstream_error", extra={"upstream": name, "status": response.status_code})
        if response.status_code >= 500:
            raise UpstreamUnavailable()
        raise ApiError("A service refused the request.", code="upstream_error", status=502)
    return response


def _published(course: CourseInfo) -> bool:
    # A draft is asked again every time, so the moment it is published learners see it.
    return course.status == "published"


class CoursesClient:
    def __init__(
        self, base_url: str, *, internal_key: str, timeout: float, cache_seconds: float
    ) -> None:
        self.client = ServiceClient(base_url, timeout=timeout, internal_key=internal_key)
        self.cache: TtlCache[CourseInfo] = TtlCache(cache_seconds)

    def get(self, course_id: int) -> CourseInfo:
        info = self.cache.get(course_id, lambda: self._fetch(course_id), keep=_published)
        if info is None:
            raise CourseNotFound()
        return info

    def _fetch(self, course_id: int) -> CourseInfo | None:
        response = _call(self.client, "courses", "GET", f"/internal/courses/{int(course_id)}")
        if response is None:
            return None
        data = response.json()
        return CourseInfo(
            id=int(data["id"]),
            author_id=data.get("author_id"),
            status=str(data.get("status") or "published"),
            price=Decimal(str(data["price"])),
        )

    def close(self) -> None:
        self.client.close()


class EnrolmentsClient:
    def __init__(
        self, base_url: str, *, internal_key: str, timeout: float, cache_seconds: float
    ) -> None:
        self.client = ServiceClient(base_url, timeout=timeout, internal_key=internal_key)
        self.cache: TtlCache[dict[str, Any]] = TtlCache(cache_seconds)

    def access(self, user_id: str, course_id: int) -> dict[str, Any] | None:
        """The learner's live enrolment, if it lets them learn. A refusal is not cached:
        someone who has just paid gets in at once."""

        def load() -> dict[str, Any] | None:
            response = _call(
                self.client,
                "enrolments",
                "GET",
                "/internal/enrolments/access",
                params={"user_id": user_id, "course_id": course_id},
            )
            if response is None:
                return None
            data: dict[str, Any] = response.json()
            return data if data.get("may_learn") else None

        return self.cache.get((user_id, course_id), load)

    def learners(self, course_id: int, page: int, per_page: int) -> dict[str, Any]:
        response = _call(
            self.client,
            "enrolments",
            "GET",
            "/internal/enrolments/learners",
            params={"course_id": course_id, "page": page, "per_page": per_page},
        )
        return response.json() if response is not None else {"learners": [], "total": 0}

    def by_user(self, user_id: str, page: int, per_page: int) -> dict[str, Any]:
        response = _call(
            self.client,
            "enrolments",
            "GET",
            "/internal/enrolments/by-user",
            params={"user_id": user_id, "page": page, "per_page": per_page},
        )
        return response.json() if response is not None else {"enrolments": [], "total": 0}

    def complete(self, user_id: str, course_id: int) -> bool:
        """Mark the learner's enrolment completed (idempotent there); False if none is live."""
        response = _call(
            self.client,
            "enrolments",
            "POST",
            "/internal/enrolments/complete",
            json={"user_id": user_id, "course_id": course_id},
        )
        return response is not None

    def close(self) -> None:
        self.client.close()
