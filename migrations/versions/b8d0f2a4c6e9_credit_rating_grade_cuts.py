"""credit: a rating keeps the grade lines it was graded on

Written by hand. credit_rating.grade_cuts (JSON, nullable): the bureau's credit.cut_a/b/c when the rating was
computed, so a published grade is stated with the lines it was given on after the bureau moves its lines. Rows
computed before have none: they are stated with their bureau's lines now (as before), and take theirs at their
next computation; a final rating is never computed again, so it keeps none.

Revision ID: b8d0f2a4c6e9
Revises: a7c9e1b3d5f8
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa

revision = 'b8d0f2a4c6e9'
down_revision = 'a7c9e1b3d5f8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.add_column(sa.Column('grade_cuts', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_column('grade_cuts')
