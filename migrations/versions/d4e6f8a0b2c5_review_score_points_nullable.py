"""review_score.points nullable: a draft keeps an item's reason before its score, and a score the expert cleared

Written by hand. An expert notes reasons item by item and scores at the end; a draft row may now hold a comment
without points (or points the expert erased). Submitting still needs points on every item (review.services).
The downgrade drops draft rows without points (their reasons are lost, as before this revision).

Revision ID: d4e6f8a0b2c5
Revises: c2d4f6a8b0e3
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = 'd4e6f8a0b2c5'
down_revision = 'c2d4f6a8b0e3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('review_score', schema=None) as batch_op:
        batch_op.alter_column('points', existing_type=sa.Numeric(precision=6, scale=2), nullable=True)


def downgrade():
    op.execute("DELETE FROM review_score WHERE points IS NULL")
    with op.batch_alter_table('review_score', schema=None) as batch_op:
        batch_op.alter_column('points', existing_type=sa.Numeric(precision=6, scale=2), nullable=False)
