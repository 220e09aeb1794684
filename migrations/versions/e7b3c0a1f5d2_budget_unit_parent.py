"""budget unit tree: 主管部门 → 所属单位 (issue 12, organisations and budget units)

Written by hand. One nullable self-reference on budget_unit (existing units stay top-level), indexed for
the subtree lookups of conflict checks.

Revision ID: e7b3c0a1f5d2
Revises: d5e2a7c93b10
Create Date: 2026-12-05 03:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e7b3c0a1f5d2'
down_revision = 'd5e2a7c93b10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('budget_unit', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_budget_unit_parent_id'), ['parent_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_budget_unit_parent_id_budget_unit'), 'budget_unit', ['parent_id'], ['id'])


def downgrade():
    with op.batch_alter_table('budget_unit', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_budget_unit_parent_id_budget_unit'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_budget_unit_parent_id'))
        batch_op.drop_column('parent_id')
