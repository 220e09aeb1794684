"""procurement integrity

Written by hand: collusion flags per procurement with the committee's decision, the red flags
precomputed over the procurement history, the refreshes and the inspections opened from a flag.

Revision ID: d8b5e1f3a7c9
Revises: d6f3c8d1e5a7
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd8b5e1f3a7c9'
down_revision = 'd6f3c8d1e5a7'
branch_labels = None
depends_on = None


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, length=32)


_RULES = ('same_file', 'similar_text', 'same_metadata', 'same_person', 'identical_price', 'price_pattern', 'shared_contact')
_INDICATORS = ('single_bid', 'short_period', 'lowball', 'near_ceiling', 'dominant_firm', 'losing_bidder', 'rotation',
               'disqualifications', 'rotation_skipped')


def upgrade():
    # Collusion checks (财政部令第87号 第三十七条) run when bids are opened; the committee decides each flag.
    op.create_table('integrity_check',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=False),
    sa.Column('checked_at', sa.DateTime(), nullable=False),
    sa.Column('bid_count', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_integrity_check_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_integrity_check')),
    sa.UniqueConstraint('procurement_id', name=op.f('uq_integrity_check_procurement_id'))
    )
    op.create_table('collusion_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=False),
    sa.Column('rule', _enum('collusionrule', *_RULES), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('bid_ids', sa.JSON(), nullable=False),
    sa.Column('summary', sa.String(length=1000), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('decision', _enum('flagdecision', 'exclude', 'not_collusion', 'refer'), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_by_id', sa.Integer(), nullable=True),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_collusion_flag_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_collusion_flag_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collusion_flag')),
    sa.UniqueConstraint('procurement_id', 'key', name=op.f('uq_collusion_flag_procurement_id_key'))
    )
    with op.batch_alter_table('collusion_flag', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_collusion_flag_procurement_id'), ['procurement_id'], unique=False)

    # Red flags on the procurement history, precomputed by the worker (IQR fences over the region).
    op.create_table('red_flag',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('indicator', _enum('indicator', *_INDICATORS), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=True),
    sa.Column('firm_id', sa.Integer(), nullable=True),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('threshold', sa.Float(), nullable=False),
    sa.Column('explanation', sa.String(length=1000), nullable=False),
    sa.Column('procurement_ids', sa.JSON(), nullable=False),
    sa.Column('quality', sa.JSON(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_red_flag_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_red_flag_firm_id_firm')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_red_flag_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_red_flag'))
    )
    with op.batch_alter_table('red_flag', schema=None) as batch_op:
        batch_op.create_index('ix_red_flag_bureau_year', ['bureau_id', 'year'], unique=False)
        batch_op.create_index(batch_op.f('ix_red_flag_firm_id'), ['firm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_red_flag_procurement_id'), ['procurement_id'], unique=False)

    op.create_table('red_flag_refresh',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('computed_at', sa.DateTime(), nullable=False),
    sa.Column('procurements', sa.Integer(), nullable=False),
    sa.Column('flags', sa.Integer(), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('medians', sa.JSON(), nullable=False),
    sa.Column('fences', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_red_flag_refresh'))
    )
    op.create_table('red_flag_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('indicator', _enum('indicator', *_INDICATORS), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=True),
    sa.Column('firm_id', sa.Integer(), nullable=False),
    sa.Column('inspection_id', sa.Integer(), nullable=False),
    sa.Column('opened_by_id', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_red_flag_case_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_red_flag_case_firm_id_firm')),
    sa.ForeignKeyConstraint(['inspection_id'], ['inspection.id'], name=op.f('fk_red_flag_case_inspection_id_inspection')),
    sa.ForeignKeyConstraint(['opened_by_id'], ['user_account.id'], name=op.f('fk_red_flag_case_opened_by_id_user_account')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_red_flag_case_procurement_id_procurement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_red_flag_case')),
    sa.UniqueConstraint('inspection_id', name=op.f('uq_red_flag_case_inspection_id'))
    )
    with op.batch_alter_table('red_flag_case', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_red_flag_case_bureau_id'), ['bureau_id'], unique=False)


def downgrade():
    with op.batch_alter_table('red_flag_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_red_flag_case_bureau_id'))
    op.drop_table('red_flag_case')
    op.drop_table('red_flag_refresh')
    with op.batch_alter_table('red_flag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_red_flag_procurement_id'))
        batch_op.drop_index(batch_op.f('ix_red_flag_firm_id'))
        batch_op.drop_index('ix_red_flag_bureau_year')
    op.drop_table('red_flag')
    with op.batch_alter_table('collusion_flag', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collusion_flag_procurement_id'))
    op.drop_table('collusion_flag')
    op.drop_table('integrity_check')
