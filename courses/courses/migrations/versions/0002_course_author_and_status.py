"""course author and status

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMN on both MariaDB and SQLite: a batch (copy-and-move) rebuild on
    # SQLite would lose the table's AUTOINCREMENT, and deleted ids would come back.
    # The courses that exist were all in the catalogue: they stay published.
    op.add_column("courses", sa.Column("author_id", sa.String(64), nullable=True))
    op.add_column(
        "courses",
        sa.Column("status", sa.String(16), nullable=False, server_default="published"),
    )
    op.create_index("ix_courses_status_start_date", "courses", ["status", "start_date"])
    op.create_index("ix_courses_author_id", "courses", ["author_id"])


def downgrade():
    op.drop_index("ix_courses_author_id", table_name="courses")
    op.drop_index("ix_courses_status_start_date", table_name="courses")
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35+) drops a column in place; no rebuild, AUTOINCREMENT kept.
        op.execute("ALTER TABLE courses DROP COLUMN status")
        op.execute("ALTER TABLE courses DROP COLUMN author_id")
    else:
        op.drop_column("courses", "status")
        op.drop_column("courses", "author_id")
