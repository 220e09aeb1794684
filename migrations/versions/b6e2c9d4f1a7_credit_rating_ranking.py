"""credit_rating ranking index (year, rated DESC, total DESC, id): the credit page of a large scope reads a
year's ratings in its order and stops after the page, instead of sorting the year (issue 18)

Revision ID: b6e2c9d4f1a7
Revises: a3d9f6b2c8e1
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'b6e2c9d4f1a7'
down_revision = 'a3d9f6b2c8e1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.create_index('ix_credit_rating_ranking', ['year', sa.text('rated DESC'), sa.text('total DESC'), 'id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_rating_ranking')
