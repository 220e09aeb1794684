"""inspection_response: every answer of the inspected firm, instead of inspection.firm_response (one, overwritten)

Written by hand. A later finding asks the firm again (待机构回复); its second answer overwrote the first in the one
column, and the audit log kept only "提交整改回复". Each answer is now a row (text, when, by whom). The answers
already given move over: one row per inspection with a response, dated responded_at (else the opening), its
author the actor of the last "inspection.response" audit event of that inspection (the firm user who answered;
None when the log has none). Then inspection.firm_response and inspection.responded_at go — the model reads
the latest answer from the rows. The downgrade puts the latest answer back into the columns (earlier ones are
lost, as they were before this revision).

Revision ID: e5f7a9b1c3d6
Revises: d4e6f8a0b2c5
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = 'e5f7a9b1c3d6'
down_revision = 'd4e6f8a0b2c5'
branch_labels = None
depends_on = None

_inspection = sa.table('inspection', sa.column('id', sa.Integer), sa.column('firm_response', sa.Text),
                       sa.column('responded_at', sa.DateTime), sa.column('opened_at', sa.DateTime))
_response = sa.table('inspection_response', sa.column('id', sa.Integer), sa.column('inspection_id', sa.Integer),
                     sa.column('text', sa.Text), sa.column('actor_id', sa.Integer), sa.column('created_at', sa.DateTime))
_audit = sa.table('audit_event', sa.column('id', sa.Integer), sa.column('actor_id', sa.Integer),
                  sa.column('action', sa.String), sa.column('object_type', sa.String), sa.column('object_id', sa.Integer))


def upgrade():
    op.create_table('inspection_response',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_inspection_response_actor_id_user_account')),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspection.id'], name=op.f('fk_inspection_response_inspection_id_inspection'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inspection_response'))
    )
    with op.batch_alter_table('inspection_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_response_inspection_id'), ['inspection_id'], unique=False)

    backfill(op.get_bind())

    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.drop_column('responded_at')
        batch_op.drop_column('firm_response')


def backfill(bind) -> None:
    rows = bind.execute(sa.select(_inspection.c.id, _inspection.c.firm_response, _inspection.c.responded_at,
                                  _inspection.c.opened_at)
                        .where(_inspection.c.firm_response.is_not(None)).order_by(_inspection.c.id)).all()
    for inspection_id, text, responded_at, opened_at in rows:
        actor_id = bind.execute(sa.select(_audit.c.actor_id).where(
            _audit.c.action == 'inspection.response', _audit.c.object_type == 'inspection',
            _audit.c.object_id == inspection_id).order_by(_audit.c.id.desc()).limit(1)).scalar()
        bind.execute(sa.insert(_response).values(inspection_id=inspection_id, text=text, actor_id=actor_id,
                                                 created_at=responded_at or opened_at))


def downgrade():
    with op.batch_alter_table('inspection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('firm_response', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('responded_at', sa.DateTime(), nullable=True))
    bind = op.get_bind()
    latest = bind.execute(sa.select(_response.c.inspection_id, _response.c.text, _response.c.created_at)
                          .order_by(_response.c.inspection_id, _response.c.id)).all()
    for inspection_id, text, created_at in {row[0]: row for row in latest}.values():
        bind.execute(sa.update(_inspection).where(_inspection.c.id == inspection_id)
                     .values(firm_response=text, responded_at=created_at))
    with op.batch_alter_table('inspection_response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspection_response_inspection_id'))
    op.drop_table('inspection_response')
