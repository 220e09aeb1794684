"""witnessed draws

Written by hand.

Revision ID: d1a7c3e5f9b2
Revises: b5d7e9f1a3c6
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd1a7c3e5f9b2'
down_revision = 'b5d7e9f1a3c6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=40), nullable=True))
        # rows written before witnessed draws were drawn at once
        batch_op.add_column(sa.Column('status', sa.Enum('announced', 'drawn', name='drawstatus', native_enum=False,
                                                        create_constraint=False, length=32),
                                      nullable=False, server_default='drawn'))
        batch_op.add_column(sa.Column('candidate_names', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('candidate_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('commitment', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('secret', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('derived_from_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drawn_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('drawn_at', sa.DateTime(), nullable=True))
        batch_op.alter_column('seed', existing_type=sa.String(length=64), nullable=True)
        batch_op.create_index(batch_op.f('ix_draw_status'), ['status'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_draw_derived_from_id_draw'), 'draw', ['derived_from_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_draw_drawn_by_id_user_account'), 'user_account', ['drawn_by_id'], ['id'])
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.alter_column('status', server_default=None)

    op.create_table(
        'draw_witness',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('draw_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('number', sa.String(length=20), nullable=True),
        sa.Column('entered_at', sa.DateTime(), nullable=True),
        sa.Column('named_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['draw_id'], ['draw.id'], name=op.f('fk_draw_witness_draw_id_draw')),
        sa.ForeignKeyConstraint(['named_by_id'], ['user_account.id'], name=op.f('fk_draw_witness_named_by_id_user_account')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_draw_witness_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_draw_witness')),
        sa.UniqueConstraint('draw_id', 'user_id', name=op.f('uq_draw_witness_draw_id_user_id')),
    )
    with op.batch_alter_table('draw_witness', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_draw_witness_draw_id'), ['draw_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_draw_witness_user_id'), ['user_id'], unique=False)


def downgrade():
    with op.batch_alter_table('draw_witness', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_draw_witness_user_id'))
        batch_op.drop_index(batch_op.f('ix_draw_witness_draw_id'))
    op.drop_table('draw_witness')
    with op.batch_alter_table('draw', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_draw_drawn_by_id_user_account'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_draw_derived_from_id_draw'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_draw_status'))
        batch_op.alter_column('seed', existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column('drawn_at')
        batch_op.drop_column('drawn_by_id')
        batch_op.drop_column('derived_from_id')
        batch_op.drop_column('params')
        batch_op.drop_column('secret')
        batch_op.drop_column('commitment')
        batch_op.drop_column('candidate_hash')
        batch_op.drop_column('candidate_names')
        batch_op.drop_column('status')
        batch_op.drop_column('kind')
