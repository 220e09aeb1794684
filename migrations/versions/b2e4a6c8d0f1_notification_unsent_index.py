"""notification: a partial index of the messages still to e-mail (ix_notification_unsent)

Written by hand. core/notifications.py ``send_pending_email`` (hourly) selects the notifications with
``emailed_at IS NULL AND read_at IS NULL AND created_at >= now - 3 days`` of enabled accounts with an address.
No index served it: PostgreSQL read the table whole (or every message of every account with an address), and the
table keeps every message ever written. The index is partial — only messages neither sent nor read — and keyed by
``created_at``, so the run reads the last days' waiting messages only, however old the messages that will never be
sent (accounts without an address, messages read first). SQLite (3.8+) and PostgreSQL alike.

Revision ID: b2e4a6c8d0f1
Revises: a1d3f5b7c9e2
Create Date: 2026-12-09 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b2e4a6c8d0f1'
down_revision = 'a1d3f5b7c9e2'
branch_labels = None
depends_on = None

_UNSENT = 'emailed_at IS NULL AND read_at IS NULL'


def upgrade():
    op.create_index('ix_notification_unsent', 'notification', ['created_at'], unique=False,
                    postgresql_where=sa.text(_UNSENT), sqlite_where=sa.text(_UNSENT))


def downgrade():
    op.drop_index('ix_notification_unsent', table_name='notification')
