"""engagement team and staff points (issue 14: lead evaluators carry their own record)

Written by hand. staff_point: a person's points (失信记分), registry; engagement_member: the lead evaluator
(主评人) and team named on an engagement, procurement.

Revision ID: d4d1a6b8c3e5
Revises: d3c9f5a7b2d4
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd4d1a6b8c3e5'
down_revision = 'd3c9f5a7b2d4'
branch_labels = None
depends_on = None


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade():
    op.create_table('staff_point',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('firm_id', sa.Integer(), nullable=False),
    sa.Column('person_digest', sa.String(length=64), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('kind', _enum('pointkind', 'report_returned', 'finding_minor', 'finding_general', 'finding_serious',
                            'finding_intentional'), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('as_lead', sa.Boolean(), nullable=False),
    sa.Column('reference', sa.String(length=40), nullable=True),
    sa.Column('source_type', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.Column('link', sa.String(length=200), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['user_account.id'], name=op.f('fk_staff_point_actor_id_user_account')),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_staff_point_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_staff_point_firm_id_firm')),
    sa.ForeignKeyConstraint(['staff_id'], ['firm_staff.id'], name=op.f('fk_staff_point_staff_id_firm_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_point')),
    sa.UniqueConstraint('staff_id', 'source_type', 'source_id', name='uq_staff_point_source')
    )
    with op.batch_alter_table('staff_point', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_point_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_point_firm_id'), ['firm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_point_person_digest'), ['person_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_point_staff_id'), ['staff_id'], unique=False)

    op.create_table('engagement_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('is_lead', sa.Boolean(), nullable=False),
    sa.Column('named_at', sa.DateTime(), nullable=False),
    sa.Column('named_by_id', sa.Integer(), nullable=True),
    sa.Column('removed_at', sa.DateTime(), nullable=True),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.Column('removed_reason', sa.String(length=300), nullable=True),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_engagement_member_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['named_by_id'], ['user_account.id'], name=op.f('fk_engagement_member_named_by_id_user_account')),
    sa.ForeignKeyConstraint(['removed_by_id'], ['user_account.id'], name=op.f('fk_engagement_member_removed_by_id_user_account')),
    sa.ForeignKeyConstraint(['staff_id'], ['firm_staff.id'], name=op.f('fk_engagement_member_staff_id_firm_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_engagement_member'))
    )
    with op.batch_alter_table('engagement_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_engagement_member_engagement_id'), ['engagement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_engagement_member_staff_id'), ['staff_id'], unique=False)


def downgrade():
    with op.batch_alter_table('engagement_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_engagement_member_staff_id'))
        batch_op.drop_index(batch_op.f('ix_engagement_member_engagement_id'))
    op.drop_table('engagement_member')
    with op.batch_alter_table('staff_point', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_point_staff_id'))
        batch_op.drop_index(batch_op.f('ix_staff_point_person_digest'))
        batch_op.drop_index(batch_op.f('ix_staff_point_firm_id'))
        batch_op.drop_index(batch_op.f('ix_staff_point_bureau_id'))
    op.drop_table('staff_point')
