"""plan approval past warnings needs a written reason (issue 13)

Written by hand. evaluation_plan.approval_warnings (JSON list of the plan checks' warnings at approval) and
approval_reason (the written reason). Plans approved before keep an empty list and no reason.

Revision ID: b5d7e9f1a3c6
Revises: a2b4c6d8e0f1
Create Date: 2026-12-05 07:50:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b5d7e9f1a3c6'
down_revision = 'a2b4c6d8e0f1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('evaluation_plan', schema=None) as batch_op:
        batch_op.add_column(sa.Column('approval_warnings', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('approval_reason', sa.Text(), nullable=True))
    # the server default only fills the plans that exist; new rows get [] from the model, as the model says
    with op.batch_alter_table('evaluation_plan', schema=None) as batch_op:
        batch_op.alter_column('approval_warnings', server_default=None)


def downgrade():
    with op.batch_alter_table('evaluation_plan', schema=None) as batch_op:
        batch_op.drop_column('approval_reason')
        batch_op.drop_column('approval_warnings')
