"""user_account.disabled_authority: who disabled an account, so that only that authority or a higher one enables it

Written by hand. One nullable column (empty while the account is enabled). Accounts disabled before it are given
the authority of the administrator named by their last "user.disabled" audit event: the system administrator,
a bureau administrator (its bureau's level) or a firm's administrator; one with no such event stays empty and
counts as disabled by the bureau side (core/permissions.py ``lifts_deactivation``).

Revision ID: e1f3a5c7b9d2
Revises: b8d0f2a4c6e9
Create Date: 2026-12-07 09:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e1f3a5c7b9d2'
down_revision = 'b8d0f2a4c6e9'
branch_labels = None
depends_on = None

_FROM_AUDIT_LOG = """
UPDATE user_account SET disabled_authority = (
    SELECT CASE actor.role
               WHEN 'system_admin' THEN 'system'
               WHEN 'bureau_admin' THEN (SELECT b.level FROM bureau b WHERE b.id = actor.bureau_id)
               WHEN 'firm_user' THEN 'firm'
           END
    FROM audit_event e JOIN user_account actor ON actor.id = e.actor_id
    WHERE e.action = 'user.disabled' AND e.object_type = 'user_account' AND e.object_id = user_account.id
    ORDER BY e.id DESC LIMIT 1)
WHERE NOT is_enabled
"""


def upgrade():
    op.add_column('user_account', sa.Column('disabled_authority', sa.Enum(
        'firm', 'county', 'prefecture', 'region', 'system', name='authority', native_enum=False,
        create_constraint=False, length=32), nullable=True))
    op.execute(_FROM_AUDIT_LOG)


def downgrade():
    op.drop_column('user_account', 'disabled_authority')
