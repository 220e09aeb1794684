"""self evaluation reviews and materials

Written by hand.

Revision ID: d5e2b7c9d4f6
Revises: d4d1a6b8c3e5
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd5e2b7c9d4f6'
down_revision = 'd4d1a6b8c3e5'
branch_labels = None
depends_on = None


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade():
    # A 主管部门's self-evaluation of a central transfer: the subject of review panels beside engagements.
    op.create_table('self_evaluation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('budget_unit_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('funds', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('status', _enum('selfevaluationstatus', 'submitted', 'reviewing', 'returned', 'passed'), nullable=False),
    sa.Column('score', sa.Numeric(precision=6, scale=2), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['budget_unit_id'], ['budget_unit.id'], name=op.f('fk_self_evaluation_budget_unit_id_budget_unit')),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_self_evaluation_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_self_evaluation_created_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_self_evaluation'))
    )
    with op.batch_alter_table('self_evaluation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_self_evaluation_budget_unit_id'), ['budget_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_self_evaluation_bureau_id'), ['bureau_id'], unique=False)

    # A submission and a panel belong to an engagement or to a self-evaluation.
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.add_column(sa.Column('self_evaluation_id', sa.Integer(), nullable=True))
        batch_op.alter_column('engagement_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_submission_self_evaluation_id'), ['self_evaluation_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_submission_self_evaluation_id_self_evaluation'), 'self_evaluation',
                                    ['self_evaluation_id'], ['id'])
        batch_op.create_unique_constraint(batch_op.f('uq_submission_self_evaluation_id_version'),
                                          ['self_evaluation_id', 'version'])
    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.add_column(sa.Column('self_evaluation_id', sa.Integer(), nullable=True))
        batch_op.alter_column('engagement_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_review_panel_self_evaluation_id'), ['self_evaluation_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_review_panel_self_evaluation_id_self_evaluation'), 'self_evaluation',
                                    ['self_evaluation_id'], ['id'])

    # The firm's 资料清单 during fieldwork, answered by the evaluated unit.
    op.create_table('material_request',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=True),
    sa.Column('unit_note', sa.String(length=1000), nullable=True),
    sa.Column('uploaded_at', sa.DateTime(), nullable=True),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_material_request_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_material_request_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], name=op.f('fk_material_request_file_id_stored_file')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_material_request_uploaded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_material_request'))
    )
    with op.batch_alter_table('material_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_material_request_engagement_id'), ['engagement_id'], unique=False)


def downgrade():
    with op.batch_alter_table('material_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_material_request_engagement_id'))
    op.drop_table('material_request')

    # Self-evaluation rows go with their table; what remains belongs to engagements again.
    op.execute("DELETE FROM review_score WHERE review_id IN (SELECT r.id FROM review r JOIN panel_invitation i ON i.id = r.invitation_id"
               " JOIN review_panel p ON p.id = i.panel_id WHERE p.self_evaluation_id IS NOT NULL)")
    op.execute("DELETE FROM review WHERE invitation_id IN (SELECT i.id FROM panel_invitation i JOIN review_panel p"
               " ON p.id = i.panel_id WHERE p.self_evaluation_id IS NOT NULL)")
    op.execute("DELETE FROM panel_invitation WHERE panel_id IN (SELECT id FROM review_panel WHERE self_evaluation_id IS NOT NULL)")
    op.execute("DELETE FROM review_panel WHERE self_evaluation_id IS NOT NULL")
    op.execute("DELETE FROM submission WHERE self_evaluation_id IS NOT NULL")
    with op.batch_alter_table('review_panel', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_review_panel_self_evaluation_id_self_evaluation'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_review_panel_self_evaluation_id'))
        batch_op.alter_column('engagement_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('self_evaluation_id')
    with op.batch_alter_table('submission', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_submission_self_evaluation_id_version'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_submission_self_evaluation_id_self_evaluation'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_submission_self_evaluation_id'))
        batch_op.alter_column('engagement_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('self_evaluation_id')

    with op.batch_alter_table('self_evaluation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_self_evaluation_bureau_id'))
        batch_op.drop_index(batch_op.f('ix_self_evaluation_budget_unit_id'))
    op.drop_table('self_evaluation')
