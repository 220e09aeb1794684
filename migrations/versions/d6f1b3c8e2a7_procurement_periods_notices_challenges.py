"""procurement: periods, thresholds, result notices, challenges (issue 13)

Written by hand.

Revision ID: d6f1b3c8e2a7
Revises: c4e8a1b2d9f0
Create Date: 2026-12-05 06:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd6f1b3c8e2a7'
down_revision = 'c4e8a1b2d9f0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('result_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=False),
    sa.Column('award_id', sa.Integer(), nullable=True),
    sa.Column('firm_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('challenge_until', sa.Date(), nullable=False),
    sa.Column('contract_ready_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_reason', sa.String(length=500), nullable=True),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['award_id'], ['award.id'], name=op.f('fk_result_notice_award_id_award')),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_result_notice_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_result_notice_firm_id_firm')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_result_notice_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_notice'))
    )
    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_notice_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_notice_procurement_id'), ['procurement_id'], unique=False)

    op.create_table('procurement_challenge',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=False),
    sa.Column('notice_id', sa.Integer(), nullable=False),
    sa.Column('grounds', sa.Text(), nullable=False),
    sa.Column('filed_by_id', sa.Integer(), nullable=True),
    sa.Column('filed_at', sa.DateTime(), nullable=False),
    sa.Column('answer_due', sa.Date(), nullable=False),
    sa.Column('status', sa.Enum('open', 'dismissed', 'upheld', name='challengestatus', native_enum=False, length=32), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('remedy', sa.Enum('reevaluate', 'rerun', name='challengeremedy', native_enum=False, length=32), nullable=True),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.Column('firm_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['answered_by_id'], ['user_account.id'], name=op.f('fk_procurement_challenge_answered_by_id_user_account')),
    sa.ForeignKeyConstraint(['filed_by_id'], ['user_account.id'], name=op.f('fk_procurement_challenge_filed_by_id_user_account')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_procurement_challenge_firm_id_firm')),
    sa.ForeignKeyConstraint(['notice_id'], ['result_notice.id'], name=op.f('fk_procurement_challenge_notice_id_result_notice')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_procurement_challenge_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procurement_challenge')),
    sa.UniqueConstraint('notice_id', 'firm_id', name=op.f('uq_procurement_challenge_notice_id_firm_id'))
    )
    with op.batch_alter_table('procurement_challenge', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_procurement_challenge_firm_id'), ['firm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_procurement_challenge_notice_id'), ['notice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_procurement_challenge_procurement_id'), ['procurement_id'], unique=False)

    op.create_table('procurement_challenge_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('challenge_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['challenge_id'], ['procurement_challenge.id'], name=op.f('fk_procurement_challenge_evidence_challenge_id_procurement_challenge')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], name=op.f('fk_procurement_challenge_evidence_file_id_stored_file')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procurement_challenge_evidence'))
    )
    with op.batch_alter_table('procurement_challenge_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_procurement_challenge_evidence_challenge_id'), ['challenge_id'], unique=False)


def downgrade():
    op.drop_table('procurement_challenge_evidence')
    op.drop_table('procurement_challenge')
    op.drop_table('result_notice')
