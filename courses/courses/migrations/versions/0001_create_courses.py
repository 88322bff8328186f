"""create courses

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade():
    op.create_table(
        "courses",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("max_participants", sa.Integer, nullable=True),
        sa.Column("start_date", sa.DateTime, nullable=False),
        sa.Column("end_date", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("name_key", name="uq_courses_name_key"),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
        # Never reuse a deleted course's id: enrolments and seats still name it.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_courses_start_date", "courses", ["start_date"])
    op.create_index("ix_courses_price", "courses", ["price"])


def downgrade():
    op.drop_table("courses")
