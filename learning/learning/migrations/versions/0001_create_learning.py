"""create learning: content, tests, attempts, progress

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
# Ids are never reused on SQLite either: attempts and completions outlive what they name.
NO_REUSE = {"sqlite_autoincrement": True}


def _id():
    return sa.Column("id", Id, primary_key=True, autoincrement=True)


def _times():
    return [
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    ]


def _parent(name, table, column="id", **kwargs):
    return sa.Column(name, Id, sa.ForeignKey(f"{table}.{column}", ondelete="CASCADE"), nullable=False, **kwargs)


def upgrade():
    op.create_table(
        "course_contents",
        sa.Column("course_id", Id, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "modules",
        _id(),
        _parent("course_id", "course_contents", "course_id"),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        *_times(),
        **NO_REUSE,
    )
    op.create_index("ix_modules_course_position", "modules", ["course_id", "position"])
    op.create_table(
        "lessons",
        _id(),
        _parent("module_id", "modules"),
        sa.Column("course_id", Id, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("lesson_type", sa.String(16), nullable=False),
        sa.Column("content", LongText, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("published", sa.Boolean, nullable=False),
        sa.Column("estimated_minutes", sa.Integer, nullable=True),
        *_times(),
        **NO_REUSE,
    )
    op.create_index("ix_lessons_module_position", "lessons", ["module_id", "position"])
    op.create_index("ix_lessons_course", "lessons", ["course_id", "published", "module_id"])
    op.create_table(
        "media",
        _id(),
        _parent("lesson_id", "lessons"),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("media_type", sa.String(8), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("storage_key", sa.String(64), nullable=True),
        sa.Column("content_type", sa.String(64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger, nullable=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        **NO_REUSE,
    )
    op.create_index("ix_media_lesson_id", "media", ["lesson_id"])
    op.create_table(
        "tests",
        _id(),
        _parent("lesson_id", "lessons", unique=True),
        sa.Column("course_id", Id, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("passing_score", sa.Numeric(5, 2), nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=True),
        sa.Column("time_limit_seconds", sa.Integer, nullable=True),
        sa.Column("grade_method", sa.String(8), nullable=False),
        sa.Column("reveal", sa.String(24), nullable=False),
        *_times(),
        **NO_REUSE,
    )
    op.create_index("ix_tests_course_id", "tests", ["course_id"])
    op.create_table(
        "questions",
        _id(),
        _parent("test_id", "tests"),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("question_type", sa.String(16), nullable=False),
        sa.Column("points", sa.Numeric(6, 2), nullable=False),
        sa.Column("accepted_answers", LongText, nullable=False),
        **NO_REUSE,
    )
    op.create_index("ix_questions_test_position", "questions", ["test_id", "position"])
    op.create_table(
        "options",
        _id(),
        _parent("question_id", "questions"),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("is_correct", sa.Boolean, nullable=False),
        **NO_REUSE,
    )
    op.create_index("ix_options_question_id", "options", ["question_id"])
    op.create_table(
        "attempts",
        _id(),
        _parent("test_id", "tests"),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("attempt_no", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("deadline", sa.DateTime, nullable=True),
        sa.Column("submitted_at", sa.DateTime, nullable=True),
        sa.Column("answers", LongText, nullable=False),
        sa.Column("score", sa.Numeric(5, 2), nullable=True),
        sa.Column("passed", sa.Boolean, nullable=True),
        sa.Column("review", LongText, nullable=True),
        sa.UniqueConstraint("test_id", "user_id", "attempt_no", name="uq_attempt_no"),
        **NO_REUSE,
    )
    op.create_table(
        "completions",
        _id(),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("course_id", Id, nullable=False),
        _parent("lesson_id", "lessons"),
        sa.Column("completed_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("user_id", "lesson_id", name="uq_completion"),
        **NO_REUSE,
    )
    op.create_index("ix_completions_user_course", "completions", ["user_id", "course_id"])
    op.create_table(
        "progress",
        _id(),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("course_id", Id, nullable=False),
        sa.Column("last_activity_at", sa.DateTime, nullable=False),
        sa.Column("completed_at", sa.DateTime, nullable=True),
        sa.Column("enrolment_completed", sa.Boolean, nullable=False),
        sa.UniqueConstraint("user_id", "course_id", name="uq_progress"),
        **NO_REUSE,
    )
    op.create_index("ix_progress_course", "progress", ["course_id"])


def downgrade():
    for table in (
        "progress", "completions", "attempts", "options", "questions", "tests", "media",
        "lessons", "modules", "course_contents",
    ):
        op.drop_table(table)
