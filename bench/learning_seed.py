"""The learner's data for the learning measurements, written straight into each service's
database in bulk through SQLAlchemy Core and the services' own table metadata (through
the API, 10 000 learners' enrolments and completions would take far too long).

- 200 published, paid courses by one author, each with 5 published modules of 10
  published theory lessons (4 kB of Markdown and a video link each) and one published
  test lesson ending the last module, its test 20 single-choice questions of 4 options;
- 10 000 learners (``bench-user-0`` …), each with live, paid enrolments in 3 courses,
  their invoices issued, and 0–15 completed lessons in each;
- 16 learners (``bench-user-10000`` …) enrolled so in 50 courses each, with 0–5 completed
  lessons in each: one for each client of the progress read.

The user ids are those ``bench.stack.mint_tokens`` mints tokens for.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Table, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase

from common.timeutil import db_now
from contracts.courses import name_key
from courses.adapters.tables import CourseRecord
from enrolments.adapters.tables import CourseSeatRecord, EnrolmentRecord, InvoiceJobRecord
from enrolments.domain import live_key
from learning.adapters import tables as lt

COURSES = 200
MODULES = 5
LESSONS_PER_MODULE = 10
QUESTIONS = 20
OPTIONS = 4
LEARNERS = 10_000
COURSES_PER_LEARNER = 3
MAX_COMPLETED = 15
HEAVY_LEARNERS = 16
HEAVY_COURSES = 50
HEAVY_MAX_COMPLETED = 5
AUTHOR = "bench-author"
PRICE = Decimal("199.99")
CHUNK = 2_000


def user_id(n: int) -> str:
    return f"bench-user-{n}"


@dataclass
class SeededCourse:
    id: int
    lesson_ids: list[int] = field(default_factory=list)  # all published, the test lesson last
    test_id: int = 0
    # question id → (its correct option id, a wrong one)
    options: dict[int, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Seeded:
    courses: list[SeededCourse]
    enrolled: dict[int, list[int]]  # learner number → indexes into courses
    heavy: list[int]  # the numbers of the learners with HEAVY_COURSES courses
    rows: int
    seconds: float


def lesson_text() -> str:
    """About 4 kB of Markdown."""
    paragraph = (
        "A list keeps its items in order and may hold the same value twice; a set keeps "
        "each value once and answers membership in constant time. Choose by what you ask "
        "of the data most often, and measure before you optimise. "
    )
    code = "```python\nseen = set()\nfor item in items:\n    if item not in seen:\n"
    code += "        seen.add(item)\n```\n\n"
    return "# Lists and sets\n\n" + (paragraph * 3 + "\n\n" + code) * 4


class Writer:
    """Rows given as tuples in ``columns`` order, written as multi-row INSERTs."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.rows = 0

    def next_id(self, record: type[DeclarativeBase]) -> int:
        column = record.__table__.c.id
        return int(self.conn.scalar(select(func.coalesce(func.max(column), 0))) or 0) + 1

    def insert(
        self, record: type[DeclarativeBase], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(columns, row, strict=True)))
            if len(batch) >= CHUNK:
                self._flush(record, batch)
                batch = []
        if batch:
            self._flush(record, batch)

    def _flush(self, record: type[DeclarativeBase], batch: list[dict[str, Any]]) -> None:
        self.conn.execute(cast(Table, record.__table__).insert(), batch)
        self.rows += len(batch)


def seed(courses_url: str, enrolments_url: str, learning_url: str) -> Seeded:
    started = time.monotonic()
    rng = random.Random(20261202)
    now = db_now()
    start, end = now - timedelta(days=30), datetime(2031, 12, 31)
    rows = 0
    with create_engine(courses_url).begin() as conn:
        out = Writer(conn)
        first = out.next_id(CourseRecord)
        names = {cid: f"Learning bench {cid}" for cid in range(first, first + COURSES)}
        out.insert(
            CourseRecord,
            ("id", "author_id", "status", "name", "name_key", "description", "price")
            + ("currency", "max_participants", "start_date", "end_date")
            + ("created_at", "updated_at"),
            (
                (cid, AUTHOR, "published", name, name_key(name), "A bench course.", PRICE)
                + ("PLN", None, start, end, now, now)
                for cid, name in names.items()
            ),
        )
        rows += out.rows
    with create_engine(learning_url).begin() as conn:
        out = Writer(conn)
        courses = _seed_content(out, list(names), now)
        rows += out.rows
    enrolled = {n: rng.sample(range(COURSES), COURSES_PER_LEARNER) for n in range(LEARNERS)}
    heavy = list(range(LEARNERS, LEARNERS + HEAVY_LEARNERS))
    for n in heavy:
        offset = rng.randrange(COURSES)
        enrolled[n] = [(offset + j) % COURSES for j in range(HEAVY_COURSES)]
    with create_engine(enrolments_url).begin() as conn:
        out = Writer(conn)
        _seed_enrolments(out, courses, names, enrolled, now, end)
        rows += out.rows
    with create_engine(learning_url).begin() as conn:
        out = Writer(conn)
        _seed_progress(out, courses, enrolled, rng, now)
        rows += out.rows
    return Seeded(courses, enrolled, heavy, rows, time.monotonic() - started)


def _seed_content(out: Writer, course_ids: list[int], now: datetime) -> list[SeededCourse]:
    module_id = out.next_id(lt.ModuleRecord) - 1
    lesson_id = out.next_id(lt.LessonRecord) - 1
    test_id = out.next_id(lt.TestRecord) - 1
    question_id = out.next_id(lt.QuestionRecord) - 1
    option_id = out.next_id(lt.OptionRecord) - 1
    modules, lessons, media, tests, questions, seeded = [], [], [], [], [], []
    options: list[tuple[Any, ...]] = []
    text = lesson_text()
    for course_id in course_ids:
        course = SeededCourse(course_id)
        for m in range(1, MODULES + 1):
            module_id += 1
            modules.append((module_id, course_id, f"Module {m}", m, True, now, now))
            for p in range(1, LESSONS_PER_MODULE + 1):
                lesson_id += 1
                course.lesson_ids.append(lesson_id)
                lessons.append(
                    (lesson_id, module_id, course_id, f"Lesson {m}.{p}", "theory", text, p)
                )
                url = f"https://video.example.org/bench/{lesson_id}.mp4"
                media.append((lesson_id, "link", "video", "Walkthrough", url, 1, now))
        lesson_id += 1  # the test lesson ends the last module
        course.lesson_ids.append(lesson_id)
        title = "Check yourself"
        last = LESSONS_PER_MODULE + 1
        lessons.append((lesson_id, module_id, course_id, title, "test", "20 questions.", last))
        test_id += 1
        course.test_id = test_id
        tests.append((test_id, lesson_id, course_id, title, Decimal("60.00"), None, 1800))
        for q in range(1, QUESTIONS + 1):
            question_id += 1
            text_q = f"Question {q}: which of these keeps each value once?"
            questions.append((question_id, test_id, q, text_q, "single", Decimal("1.00"), "[]"))
            ids = [option_id + o for o in range(1, OPTIONS + 1)]
            option_id += OPTIONS
            course.options[question_id] = (ids[q % OPTIONS], ids[(q + 1) % OPTIONS])
            options.extend(
                (oid, question_id, o, f"Option {o}", oid == ids[q % OPTIONS])
                for o, oid in enumerate(ids, start=1)
            )
        seeded.append(course)
    contents = ((cid, now) for cid in course_ids)
    out.insert(lt.CourseContentRecord, ("course_id", "created_at"), contents)
    out.insert(
        lt.ModuleRecord,
        ("id", "course_id", "title", "position", "published", "created_at", "updated_at"),
        modules,
    )
    out.insert(
        lt.LessonRecord,
        ("id", "module_id", "course_id", "title", "lesson_type", "content", "position")
        + ("published", "estimated_minutes", "created_at", "updated_at"),
        (row + (True, 15, now, now) for row in lessons),
    )
    out.insert(
        lt.MediaRecord,
        ("lesson_id", "kind", "media_type", "title", "url", "position", "created_at"),
        media,
    )
    out.insert(
        lt.TestRecord,
        ("id", "lesson_id", "course_id", "title", "passing_score", "max_attempts")
        + ("time_limit_seconds", "grade_method", "reveal", "created_at", "updated_at"),
        (row + ("highest", "after_submit", now, now) for row in tests),
    )
    out.insert(
        lt.QuestionRecord,
        ("id", "test_id", "position", "text", "question_type", "points", "accepted_answers"),
        questions,
    )
    out.insert(lt.OptionRecord, ("id", "question_id", "position", "text", "is_correct"), options)
    return seeded


def _seed_enrolments(
    out: Writer,
    courses: list[SeededCourse],
    names: dict[int, str],
    enrolled: dict[int, list[int]],
    now: datetime,
    end: datetime,
) -> None:
    """What enrolments holds once an enrolment is paid and its invoice issued: the
    enrolment (paid, invoice issued), its outbox job done, the course's seat row."""
    first = out.next_id(EnrolmentRecord)
    pairs = [(n, courses[index].id) for n, indexes in enrolled.items() for index in indexes]
    paid = now - timedelta(days=1)
    out.insert(CourseSeatRecord, ("course_id", "created_at"), ((c.id, now) for c in courses))
    out.insert(
        EnrolmentRecord,
        ("id", "user_id", "course_id", "status", "payment_status", "live_key", "course_name")
        + ("price", "currency", "course_end_date", "buyer_name", "buyer_email", "paid_at")
        + ("invoice_status", "invoice_id", "invoice_number", "invoice_view_url")
        + ("invoice_error", "created_at", "updated_at"),
        (
            (eid, user_id(n), cid, "active", "paid", live_key(user_id(n), cid), names[cid][:64])
            + (PRICE, "PLN", end, f"Bench Learner {n}", f"{user_id(n)}@bench.example.org", paid)
            + ("issued", 900_000_000 + eid, f"FV {eid}/BENCH", f"https://inv.example.org/{eid}")
            + (None, paid, paid)
            for eid, (n, cid) in enumerate(pairs, start=first)
        ),
    )
    out.insert(
        InvoiceJobRecord,
        ("enrolment_id", "status", "attempts", "available_at", "created_at", "updated_at"),
        ((eid, "done", 1, paid, paid, paid) for eid in range(first, first + len(pairs))),
    )


def _seed_progress(
    out: Writer,
    courses: list[SeededCourse],
    enrolled: dict[int, list[int]],
    rng: random.Random,
    now: datetime,
) -> None:
    """Each learner's first few theory lessons completed in each course, and the progress
    row their first completion there wrote."""
    completions: list[tuple[Any, ...]] = []
    progress: list[tuple[Any, ...]] = []
    for n, indexes in enrolled.items():
        most = HEAVY_MAX_COMPLETED if len(indexes) >= HEAVY_COURSES else MAX_COMPLETED
        for index in indexes:
            course, done = courses[index], rng.randint(0, most)
            if not done:
                continue
            at = now - timedelta(hours=rng.randint(1, 500))
            progress.append((user_id(n), course.id, at, None, False))
            completions.extend(
                (user_id(n), course.id, lesson, at) for lesson in course.lesson_ids[:done]
            )
    out.insert(
        lt.ProgressRecord,
        ("user_id", "course_id", "last_activity_at", "completed_at", "enrolment_completed"),
        progress,
    )
    out.insert(
        lt.CompletionRecord,
        ("user_id", "course_id", "lesson_id", "completed_at"),
        completions,
    )
