"""create enrolments, course seats, invoice and mail outboxes, job runs

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
TABLE_ARGS = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def upgrade():
    op.create_table(
        "enrolments",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("course_id", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payment_status", sa.String(16), nullable=False),
        sa.Column("live_key", sa.String(100), nullable=True),
        sa.Column("course_name", sa.String(64), nullable=False),
        sa.Column("price", sa.Numeric(10, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("course_end_date", sa.DateTime, nullable=False),
        sa.Column("buyer_name", sa.String(255), nullable=False),
        sa.Column("buyer_email", sa.String(255), nullable=False),
        sa.Column("paid_at", sa.DateTime, nullable=True),
        sa.Column("invoice_status", sa.String(16), nullable=False),
        sa.Column("invoice_id", sa.BigInteger, nullable=True),
        sa.Column("invoice_number", sa.String(64), nullable=True),
        sa.Column("invoice_view_url", sa.String(512), nullable=True),
        sa.Column("invoice_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("live_key", name="uq_enrolments_live_key"),
        **TABLE_ARGS,
        # Never reuse a deleted row's id: an enrolment id is its invoice's oid.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_enrolments_user_created", "enrolments", ["user_id", "created_at"])
    op.create_index("ix_enrolments_status_end", "enrolments", ["status", "course_end_date"])
    op.create_index("ix_enrolments_course_live", "enrolments", ["course_id", "live_key"])

    op.create_table(
        "course_seats",
        sa.Column("course_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        **TABLE_ARGS,
    )

    op.create_table(
        "invoice_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column(
            "enrolment_id",
            sa.BigInteger,
            sa.ForeignKey("enrolments.id", ondelete="CASCADE", name="fk_invoice_outbox_enrolment"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", Moment, nullable=False),
        sa.Column("locked_until", Moment, nullable=True),
        sa.Column("lease_token", sa.String(32), nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("enrolment_id", name="uq_invoice_outbox_enrolment"),
        **TABLE_ARGS,
        sqlite_autoincrement=True,
    )
    op.create_index("ix_invoice_outbox_due", "invoice_outbox", ["status", "available_at"])

    op.create_table(
        "mail_outbox",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("recipient", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body_text", sa.Text, nullable=False),
        sa.Column("body_html", sa.Text, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("available_at", Moment, nullable=False),
        sa.Column("locked_until", Moment, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        **TABLE_ARGS,
        sqlite_autoincrement=True,
    )
    op.create_index("ix_mail_outbox_due", "mail_outbox", ["status", "available_at"])

    op.create_table(
        "job_runs",
        sa.Column("job", sa.String(64), primary_key=True),
        sa.Column("run_on", sa.Date, primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("result", sa.Text, nullable=True),
        **TABLE_ARGS,
    )


def downgrade():
    op.drop_table("job_runs")
    op.drop_table("mail_outbox")
    op.drop_table("invoice_outbox")
    op.drop_table("course_seats")
    op.drop_table("enrolments")
