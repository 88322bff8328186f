"""The users and courses services, over pooled clients carrying the internal key."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx

from common.errors import UpstreamUnavailable
from common.http import ServiceClient
from contracts.courses import MAX_BATCH_IDS
from enrolments.domain import (
    Course,
    CourseNotFound,
    UpstreamError,
    User,
    UserNotFound,
)

log = logging.getLogger(__name__)


def _get(
    client: ServiceClient, name: str, path: str, params: str | None = None
) -> httpx.Response | None:
    """The answer, None on 404; a 503 envelope when the service cannot be reached."""
    try:
        response = client.get(path, params=params)
    except httpx.TransportError as exc:
        log.warning("upstream_unavailable", extra={"upstream": name, "error": type(exc).__name__})
        raise UpstreamUnavailable() from None
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        log.warning("upstream_error", extra={"upstream": name, "status": response.status_code})
        if response.status_code >= 500:
            raise UpstreamUnavailable()
        raise UpstreamError()
    return response


class UsersClient:
    def __init__(self, base_url: str, *, internal_key: str, timeout: float) -> None:
        self.client = ServiceClient(base_url, timeout=timeout, internal_key=internal_key)

    def get(self, user_id: str) -> User:
        response = _get(self.client, "users", f"/internal/users/{quote(user_id, safe='')}")
        if response is None:
            raise UserNotFound()
        data: dict[str, Any] = response.json()
        return User(
            id=str(data["id"]),
            email=str(data.get("email") or ""),
            username=str(data.get("username") or ""),
            first_name=str(data.get("first_name") or ""),
            last_name=str(data.get("last_name") or ""),
            is_active=bool(data.get("is_active")),
        )

    def close(self) -> None:
        self.client.close()


def _course(data: dict[str, Any]) -> Course:
    return Course(
        id=int(data["id"]),
        name=str(data["name"]),
        price=Decimal(str(data["price"])),
        currency=str(data.get("currency") or "PLN"),
        max_participants=data.get("max_participants"),
        start_date=datetime.fromisoformat(data["start_date"]),
        end_date=datetime.fromisoformat(data["end_date"]),
        status=str(data["status"]),
    )


class CoursesClient:
    def __init__(self, base_url: str, *, internal_key: str, timeout: float) -> None:
        self.client = ServiceClient(base_url, timeout=timeout, internal_key=internal_key)

    def get(self, course_id: int) -> Course:
        # The internal route: any status (a draft or archived course is the caller's
        # decision), no visibility rule, no caller identity.
        response = _get(self.client, "courses", f"/internal/courses/{int(course_id)}")
        if response is None:
            raise CourseNotFound()
        return _course(response.json())

    def get_many(self, course_ids: Sequence[int]) -> dict[int, Course]:
        """The courses that exist among ``course_ids``, by id: one call per
        ``MAX_BATCH_IDS`` ids (the internal bulk route's limit)."""
        unique = sorted({int(course_id) for course_id in course_ids})
        found: dict[int, Course] = {}
        for start in range(0, len(unique), MAX_BATCH_IDS):
            batch = unique[start : start + MAX_BATCH_IDS]
            ids = ",".join(str(course_id) for course_id in batch)
            response = _get(self.client, "courses", "/internal/courses", params=f"ids={ids}")
            if response is None:
                log.warning("upstream_error", extra={"upstream": "courses", "status": 404})
                raise UpstreamError()  # the bulk route itself is missing
            for data in response.json()["courses"]:
                course = _course(data)
                found[course.id] = course
        return found

    def close(self) -> None:
        self.client.close()
