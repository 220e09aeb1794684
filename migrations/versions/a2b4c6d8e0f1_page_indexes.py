"""indexes the pages' queries need at province scale (issue 18)

Written by hand. review_panel (engagement_id, id): the overdue rule reads each waiting engagement's latest
panel (its resubmission deadline); with only the engagement_id index PostgreSQL answered max(id) by walking
the whole panel table backwards (1.4 s for the region's dashboard at 20,000 engagements, see bench/web.py).

Revision ID: a2b4c6d8e0f1
Revises: f1c3d5e7a9b2
Create Date: 2026-12-05 07:05:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'a2b4c6d8e0f1'
down_revision = 'f1c3d5e7a9b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_review_panel_engagement_latest', 'review_panel', ['engagement_id', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_review_panel_engagement_latest', table_name='review_panel')
