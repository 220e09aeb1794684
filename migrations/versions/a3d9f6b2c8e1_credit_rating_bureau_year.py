"""credit_rating (bureau_id, year, status) index: the credit page's progress boxes and a bureau's list of a
year read the bureau's own ratings, not every bureau's ratings of the year (issue 18)

Revision ID: a3d9f6b2c8e1
Revises: e4b7d2a9c6f3
Create Date: 2026-12-05
"""
from alembic import op

revision = 'a3d9f6b2c8e1'
down_revision = 'e4b7d2a9c6f3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.create_index('ix_credit_rating_bureau_year', ['bureau_id', 'year', 'status'], unique=False)


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_index('ix_credit_rating_bureau_year')
