"""credit record corrections

Written by hand. Issue 14 (credit ratings): an upheld objection records a correction of each record it
contests (credit_correction; the original records are not touched); the objection names its component and
records and keeps the score before and after; a rating remembers the suspension its intentional violation
imposed.

Revision ID: d2b8e4f6a1c3
Revises: d1a7c3e5f9b2
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd2b8e4f6a1c3'
down_revision = 'd1a7c3e5f9b2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'credit_correction',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('objection_id', sa.Integer(), nullable=False),
        sa.Column('rating_id', sa.Integer(), nullable=False),
        sa.Column('component', sa.String(length=20), nullable=False),
        sa.Column('record_type', sa.String(length=20), nullable=False),
        sa.Column('record_id', sa.Integer(), nullable=False),
        sa.Column('label', sa.String(length=200), nullable=False),
        sa.Column('original', sa.String(length=200), nullable=False),
        sa.Column('corrected', sa.String(length=200), nullable=False),
        sa.Column('corrected_on', sa.Date(), nullable=True),
        sa.Column('excluded', sa.Boolean(), nullable=False),
        sa.Column('evidence_file_id', sa.Integer(), nullable=False),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'],
                                name=op.f('fk_credit_correction_decided_by_id_user_account')),
        sa.ForeignKeyConstraint(['evidence_file_id'], ['stored_file.id'],
                                name=op.f('fk_credit_correction_evidence_file_id_stored_file')),
        sa.ForeignKeyConstraint(['objection_id'], ['credit_objection.id'],
                                name=op.f('fk_credit_correction_objection_id_credit_objection')),
        sa.ForeignKeyConstraint(['rating_id'], ['credit_rating.id'],
                                name=op.f('fk_credit_correction_rating_id_credit_rating')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_correction')),
    )
    with op.batch_alter_table('credit_correction', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_correction_objection_id'), ['objection_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_credit_correction_rating_id'), ['rating_id'], unique=False)

    with op.batch_alter_table('credit_objection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('component', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('contested', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('total_before', sa.Numeric(precision=6, scale=2), nullable=True))
        batch_op.add_column(sa.Column('total_after', sa.Numeric(precision=6, scale=2), nullable=True))
        batch_op.add_column(sa.Column('grade_before', sa.Enum('A', 'B', 'C', 'D', name='creditgrade',
                                                              native_enum=False, create_constraint=False,
                                                              length=32), nullable=True))
        batch_op.add_column(sa.Column('grade_after', sa.Enum('A', 'B', 'C', 'D', name='creditgrade',
                                                             native_enum=False, create_constraint=False,
                                                             length=32), nullable=True))

    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.add_column(sa.Column('suspension_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_credit_rating_suspension_id_firm_status_change'),
                                    'firm_status_change', ['suspension_id'], ['id'])


def downgrade():
    with op.batch_alter_table('credit_rating', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_credit_rating_suspension_id_firm_status_change'), type_='foreignkey')
        batch_op.drop_column('suspension_id')

    with op.batch_alter_table('credit_objection', schema=None) as batch_op:
        batch_op.drop_column('grade_after')
        batch_op.drop_column('grade_before')
        batch_op.drop_column('total_after')
        batch_op.drop_column('total_before')
        batch_op.drop_column('contested')
        batch_op.drop_column('component')

    with op.batch_alter_table('credit_correction', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_correction_rating_id'))
        batch_op.drop_index(batch_op.f('ix_credit_correction_objection_id'))

    op.drop_table('credit_correction')
