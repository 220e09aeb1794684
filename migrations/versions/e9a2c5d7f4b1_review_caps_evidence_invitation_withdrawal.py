"""review: caps with evidence, invitation withdrawal (issue 13)

Written by hand.

Revision ID: e9a2c5d7f4b1
Revises: d6f1b3c8e2a7
Create Date: 2026-12-05 06:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e9a2c5d7f4b1'
down_revision = 'd6f1b3c8e2a7'
branch_labels = None
depends_on = None


def upgrade():
    # A cap on a result, with its evidence and reason; lifted caps stay as history (issue 13).
    op.create_table('result_cap',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('result_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('evidence_file_id', sa.Integer(), nullable=True),
    sa.Column('evidence_link', sa.String(length=300), nullable=True),
    sa.Column('after_publication', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('lifted_at', sa.DateTime(), nullable=True),
    sa.Column('lifted_by_id', sa.Integer(), nullable=True),
    sa.Column('lifted_reason', sa.Text(), nullable=True),
    sa.Column('lifted_after_publication', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_result_cap_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['evidence_file_id'], ['stored_file.id'], name=op.f('fk_result_cap_evidence_file_id_stored_file')),
    sa.ForeignKeyConstraint(['lifted_by_id'], ['user_account.id'], name=op.f('fk_result_cap_lifted_by_id_user_account')),
    sa.ForeignKeyConstraint(['result_id'], ['evaluation_result.id'], name=op.f('fk_result_cap_result_id_evaluation_result')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_cap'))
    )
    with op.batch_alter_table('result_cap', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_cap_result_id'), ['result_id'], unique=False)

    # A withdrawn invitation: why, by whom, when.
    with op.batch_alter_table('panel_invitation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('withdrawn_reason', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('withdrawn_at', sa.DateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_panel_invitation_withdrawn_by_id_user_account'), 'user_account',
                                    ['withdrawn_by_id'], ['id'])


def downgrade():
    with op.batch_alter_table('panel_invitation', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_panel_invitation_withdrawn_by_id_user_account'), type_='foreignkey')
        batch_op.drop_column('withdrawn_at')
        batch_op.drop_column('withdrawn_by_id')
        batch_op.drop_column('withdrawn_reason')

    with op.batch_alter_table('result_cap', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_result_cap_result_id'))

    op.drop_table('result_cap')
