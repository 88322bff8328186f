"""mail outbox: when a mail was sent or given up, for the purge

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Moment = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade():
    # Plain ADD COLUMN on both MariaDB and SQLite: a batch (copy-and-move) rebuild on
    # SQLite would lose the table's AUTOINCREMENT. Mail finished before this revision
    # counts as finished when it was stored (it was sent within minutes of that).
    op.add_column("mail_outbox", sa.Column("finished_at", Moment, nullable=True))
    op.execute(
        "UPDATE mail_outbox SET finished_at = created_at WHERE status IN ('sent', 'failed')"
    )
    op.create_index("ix_mail_outbox_finished", "mail_outbox", ["finished_at"])


def downgrade():
    op.drop_index("ix_mail_outbox_finished", table_name="mail_outbox")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE mail_outbox DROP COLUMN finished_at")
    else:
        op.drop_column("mail_outbox", "finished_at")
