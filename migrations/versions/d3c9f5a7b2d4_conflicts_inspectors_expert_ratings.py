"""conflicts, inspectors, complaints declined and looked up, expert ratings (issue 14)

Written by hand.

Revision ID: d3c9f5a7b2d4
Revises: d2b8e4f6a1c3
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd3c9f5a7b2d4'
down_revision = 'd2b8e4f6a1c3'
branch_labels = None
depends_on = None


def upgrade():
    # 不予立案 and the complainant's lookup (ComplaintStatus gains "declined": a VARCHAR, no schema change).
    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decision_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('decided_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lookup_digest', sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_complaint_decided_by_id_user_account'), 'user_account',
                                    ['decided_by_id'], ['id'])

    # An officer's declared tie with a firm (申报回避): never drawn or named to inspect it again.
    op.create_table('staff_tie',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('firm_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=True),
    sa.Column('declared_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_staff_tie_firm_id_firm')),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspection.id'], name=op.f('fk_staff_tie_inspection_id_inspection')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_staff_tie_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_tie'))
    )
    with op.batch_alter_table('staff_tie', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_tie_firm_id'), ['firm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_tie_user_id'), ['user_id'], unique=False)

    # Experts rated after each panel (review/ratings.py).
    op.create_table('expert_rating',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('panel_id', sa.Integer(), nullable=False),
    sa.Column('expert_id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('timeliness', sa.Integer(), nullable=False),
    sa.Column('quality', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('rated_by_id', sa.Integer(), nullable=True),
    sa.Column('rated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_expert_rating_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['expert_id'], ['expert.id'], name=op.f('fk_expert_rating_expert_id_expert')),
    sa.ForeignKeyConstraint(['panel_id'], ['review_panel.id'], name=op.f('fk_expert_rating_panel_id_review_panel')),
    sa.ForeignKeyConstraint(['rated_by_id'], ['user_account.id'], name=op.f('fk_expert_rating_rated_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_expert_rating')),
    sa.UniqueConstraint('panel_id', 'expert_id', name=op.f('uq_expert_rating_panel_id_expert_id'))
    )
    with op.batch_alter_table('expert_rating', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_expert_rating_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_expert_rating_expert_id'), ['expert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_expert_rating_panel_id'), ['panel_id'], unique=False)


def downgrade():
    with op.batch_alter_table('expert_rating', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_expert_rating_panel_id'))
        batch_op.drop_index(batch_op.f('ix_expert_rating_expert_id'))
        batch_op.drop_index(batch_op.f('ix_expert_rating_bureau_id'))
    op.drop_table('expert_rating')

    with op.batch_alter_table('staff_tie', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_tie_user_id'))
        batch_op.drop_index(batch_op.f('ix_staff_tie_firm_id'))
    op.drop_table('staff_tie')

    with op.batch_alter_table('complaint', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_complaint_decided_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('lookup_digest')
        batch_op.drop_column('decided_by_id')
        batch_op.drop_column('decided_at')
        batch_op.drop_column('decision_reason')
