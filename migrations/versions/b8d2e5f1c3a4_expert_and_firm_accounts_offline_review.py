"""expert and firm accounts, offline review (issue 12, accounts)

Written by hand. user_account.is_firm_admin: a firm's own administrator (the contact who registered the firm
is the first — existing self-registered firms' contacts are marked). review_panel.offline: 线下评审, chosen
when the panel is formed. Who recorded an expert's answer off-line (panel_invitation.recorded_by_id), and who
entered an expert's scores for them, when, with the note saying so (review.entered_by_id, entered_at,
offline_note).

Revision ID: b8d2e5f1c3a4
Revises: a7c41e9b2d35
Create Date: 2026-12-05 04:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b8d2e5f1c3a4'
down_revision = 'a7c41e9b2d35'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_firm_admin', sa.Boolean(), server_default=sa.false(), nullable=False))
    # A self-registered firm's contact (the firm's created_by) administers the firm's accounts.
    op.execute("UPDATE user_account SET is_firm_admin = TRUE WHERE role = 'firm_user' AND id IN "
               "(SELECT created_by_id FROM firm WHERE created_by_id IS NOT NULL AND firm.id = user_account.firm_id)")

    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('offline', sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table('panel_invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recorded_by_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_panel_invitation_recorded_by_id_user_account'), 'user_account',
                                    ['recorded_by_id'], ['id'])

    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.add_column(sa.Column('entered_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('entered_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('offline_note', sa.String(length=300), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_review_entered_by_id_user_account'), 'user_account',
                                    ['entered_by_id'], ['id'])


def downgrade():
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_review_entered_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('offline_note')
        batch_op.drop_column('entered_at')
        batch_op.drop_column('entered_by_id')

    with op.batch_alter_table('panel_invitation', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_panel_invitation_recorded_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('recorded_by_id')

    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.drop_column('offline')

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('is_firm_admin')
