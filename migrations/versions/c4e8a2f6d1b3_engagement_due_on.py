"""engagement.due_on: the stored date the waiting step is due, so "overdue" is an index range (issue 18)

The overdue rule looked up, for every waiting engagement in scope, its contract's date and (returned) its
latest returned panel's rectification deadline: the cost of the region's overdue list and count followed the
open work. The date is now stored on the engagement (kept on write by ``workflow.refresh_due``) with two partial
indexes over the waiting rows — (bureau_id, due_on) for counts, the list order for pages — and filled here for
the existing rows by the same rule.

Revision ID: c4e8a2f6d1b3
Revises: dab3f5c7e9a1
Create Date: 2026-12-05
"""
from alembic import op
import sqlalchemy as sa

revision = 'c4e8a2f6d1b3'
down_revision = 'dab3f5c7e9a1'
branch_labels = None
depends_on = None

# the rule of ``workflow.due_date``, in SQL, over the states' stored values
PLAN_PENDING = "('contracted', 'plan_returned')"
RETURNED = "('plan_returned', 'report_returned')"
WAITING = "('contracted', 'plan_returned', 'fieldwork', 'report_returned')"


def backfill_sql(dialect: str) -> str:
    """Every waiting engagement's due date from its sources (tests/test_overdue_due_on.py runs it too)."""
    # the latest returned panel's deadline (UTC), as a Beijing date
    resubmit = ("(SELECT p.resubmit_due FROM review_panel p WHERE p.id = (SELECT max(q.id) FROM review_panel q "
                "WHERE q.engagement_id = engagement.id AND q.resubmit_due IS NOT NULL))")
    beijing = (f"CAST({resubmit} + INTERVAL '8 hours' AS DATE)" if dialect == 'postgresql'
               else f"date({resubmit}, '+8 hours')")
    return f"""
        UPDATE engagement SET due_on = CASE
            WHEN state IN {RETURNED} AND {resubmit} IS NOT NULL THEN {beijing}
            WHEN state IN {PLAN_PENDING} THEN (SELECT c.plan_due FROM contract c WHERE c.engagement_id = engagement.id)
            ELSE (SELECT c.report_due FROM contract c WHERE c.engagement_id = engagement.id)
        END
        WHERE state IN {WAITING}
    """


def upgrade():
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_on', sa.Date(), nullable=True))

    op.execute(backfill_sql(op.get_bind().dialect.name))

    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.create_index('ix_engagement_due', ['bureau_id', 'due_on'], unique=False,
                              postgresql_where=sa.text('due_on IS NOT NULL'),
                              sqlite_where=sa.text('due_on IS NOT NULL'))
        batch_op.create_index('ix_engagement_due_order', [sa.text('year DESC'), 'reference'], unique=False,
                              postgresql_where=sa.text('due_on IS NOT NULL'),
                              sqlite_where=sa.text('due_on IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('engagement', schema=None) as batch_op:
        batch_op.drop_index('ix_engagement_due_order')
        batch_op.drop_index('ix_engagement_due')
        batch_op.drop_column('due_on')
