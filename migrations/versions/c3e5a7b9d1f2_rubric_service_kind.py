"""rubric.service_kind: a work-plan or report rubric for one 委托事项 (service kind)

Written by hand. DOMAIN §1: "The workflow is the same for every kind; rubric, pass mark and report outline differ
by kind" — a 绩效目标审核 report was scored on the 重点绩效评价 report rubric. NULL: the general rubric, which every
existing row is and which applies to a kind with none of its own. The unique key takes the kind in: a bureau's
versions are numbered per rubric kind and service kind (uq_rubric_version, an expression index: NULLs are distinct
in a unique constraint, so the general and the system rubrics are keyed on the coalesced values).

Revision ID: c3e5a7b9d1f2
Revises: a4c6e8f0b2d4
Create Date: 2026-12-07 15:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c3e5a7b9d1f2'
down_revision = 'a4c6e8f0b2d4'
branch_labels = None
depends_on = None

SERVICE_KIND = sa.Enum('key_evaluation', 'ex_ante_reassessment', 'target_review', 'self_evaluation_review',
                       'result_recheck', 'indicator_system', name='servicekind', native_enum=False, length=32)


# One version number per rubric: a bureau's (or the system's: bureau_id NULL) general one (service_kind NULL) or one
# 委托事项's. NULLs are distinct in a unique constraint, so the key is an expression index over the coalesced values
# (created after the batch: SQLite's batch copies the table and cannot carry an expression index).
VERSION_KEY = [sa.text('coalesce(bureau_id, 0)'), 'kind', sa.text("coalesce(service_kind, '')"), 'version']


def upgrade():
    with op.batch_alter_table('rubric', schema=None) as batch_op:
        batch_op.add_column(sa.Column('service_kind', SERVICE_KIND, nullable=True))
        batch_op.drop_constraint('uq_rubric_bureau_id_kind_version', type_='unique')
    op.create_index('uq_rubric_version', 'rubric', VERSION_KEY, unique=True)


def downgrade():
    # A kind's own rubrics go: the general ones are what the old schema can hold (panels formed on a kind's
    # rubric keep pointing at it, so they are kept only while no panel or review uses them).
    op.execute("DELETE FROM rubric_item WHERE rubric_id IN (SELECT id FROM rubric WHERE service_kind IS NOT NULL "
               "AND id NOT IN (SELECT rubric_id FROM review_panel) AND id NOT IN (SELECT rubric_id FROM review))")
    op.execute("DELETE FROM rubric WHERE service_kind IS NOT NULL "
               "AND id NOT IN (SELECT rubric_id FROM review_panel) AND id NOT IN (SELECT rubric_id FROM review)")
    # Those kept (in use) leave the numbering and are no longer current: the old key (bureau, kind, version) would
    # meet the bureau's general rubric of the same version, and the old code reads one current rubric per kind.
    op.execute("UPDATE rubric SET is_current = false, version = 1000000 + id WHERE service_kind IS NOT NULL")
    op.drop_index('uq_rubric_version', table_name='rubric')
    with op.batch_alter_table('rubric', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_rubric_bureau_id_kind_version', ['bureau_id', 'kind', 'version'])
        batch_op.drop_column('service_kind')
