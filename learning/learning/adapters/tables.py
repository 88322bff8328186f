"""The learning database: content, tests, attempts and progress."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from common.timeutil import db_now

Id = BigInteger().with_variant(Integer, "sqlite")
# A lesson holds up to 100 kB of Markdown; MariaDB's TEXT stops at 64 kB.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class Base(DeclarativeBase):
    pass


class CourseContentRecord(Base):
    """One row per course with content: what module writes and reorders lock."""

    __tablename__ = "course_contents"

    course_id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)


class ModuleRecord(Base):
    __tablename__ = "modules"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    course_id: Mapped[int] = mapped_column(
        Id, ForeignKey("course_contents.course_id", ondelete="CASCADE")
    )
    title: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)

    __table_args__ = (Index("ix_modules_course_position", "course_id", "position"),)


class LessonRecord(Base):
    __tablename__ = "lessons"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    module_id: Mapped[int] = mapped_column(Id, ForeignKey("modules.id", ondelete="CASCADE"))
    course_id: Mapped[int] = mapped_column(Id)
    title: Mapped[str] = mapped_column(String(200))
    lesson_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(LongText)
    position: Mapped[int] = mapped_column(Integer)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    estimated_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)

    # Deleted with the lesson: without the cascade the loaded media rows would be
    # orphaned (lesson_id set to NULL, which the column refuses).
    media: Mapped[list[MediaRecord]] = relationship(
        order_by="MediaRecord.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index("ix_lessons_module_position", "module_id", "position"),
        # Covers the published-lesson counts per course without reading the lessons themselves.
        Index("ix_lessons_course", "course_id", "published", "module_id"),
    )


class MediaRecord(Base):
    __tablename__ = "media"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lesson_id: Mapped[int] = mapped_column(Id, ForeignKey("lessons.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # link | file
    media_type: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    storage_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)


class TestRecord(Base):
    __tablename__ = "tests"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lesson_id: Mapped[int] = mapped_column(
        Id, ForeignKey("lessons.id", ondelete="CASCADE"), unique=True
    )
    course_id: Mapped[int] = mapped_column(Id, index=True)
    title: Mapped[str] = mapped_column(String(200))
    passing_score: Mapped[Decimal] = mapped_column(Numeric(5, 2))
    max_attempts: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time_limit_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grade_method: Mapped[str] = mapped_column(String(8))
    reveal: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now, onupdate=db_now)


class QuestionRecord(Base):
    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    test_id: Mapped[int] = mapped_column(Id, ForeignKey("tests.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    question_type: Mapped[str] = mapped_column(String(16))
    points: Mapped[Decimal] = mapped_column(Numeric(6, 2))
    accepted_answers: Mapped[str] = mapped_column(LongText, default="[]")  # JSON list

    options: Mapped[list[OptionRecord]] = relationship(
        order_by="OptionRecord.position",
        lazy="selectin",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (Index("ix_questions_test_position", "test_id", "position"),)


class OptionRecord(Base):
    __tablename__ = "options"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    question_id: Mapped[int] = mapped_column(
        Id, ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(String(1000))
    is_correct: Mapped[bool] = mapped_column(Boolean)


class AttemptRecord(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    test_id: Mapped[int] = mapped_column(Id, ForeignKey("tests.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    attempt_no: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    deadline: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    answers: Mapped[str] = mapped_column(LongText, default="[]")  # JSON list of AnswerIn
    score: Mapped[Decimal | None] = mapped_column(Numeric(5, 2), nullable=True)
    passed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    review: Mapped[str | None] = mapped_column(LongText, nullable=True)  # JSON, set at submit

    # The cap on attempts holds because two starts cannot take the same number.
    __table_args__ = (UniqueConstraint("test_id", "user_id", "attempt_no", name="uq_attempt_no"),)


class CompletionRecord(Base):
    __tablename__ = "completions"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    course_id: Mapped[int] = mapped_column(Id)
    lesson_id: Mapped[int] = mapped_column(Id, ForeignKey("lessons.id", ondelete="CASCADE"))
    completed_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)

    __table_args__ = (
        UniqueConstraint("user_id", "lesson_id", name="uq_completion"),
        Index("ix_completions_user_course", "user_id", "course_id"),
    )


class ProgressRecord(Base):
    """A learner in a course: the row their writes there lock, and when they finished."""

    __tablename__ = "progress"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    course_id: Mapped[int] = mapped_column(Id)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime, default=db_now)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # The enrolments service has been told (it may be away when the learner finishes).
    enrolment_completed: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        UniqueConstraint("user_id", "course_id", name="uq_progress"),
        Index("ix_progress_course", "course_id"),
    )
