"""screening shared index and references

Written by hand.

Revision ID: d6f3c8d1e5a7
Revises: d5e2b7c9d4f6
Create Date: 2026-12-05 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd6f3c8d1e5a7'
down_revision = 'd5e2b7c9d4f6'
branch_labels = None
depends_on = None


def upgrade():
    # The one screening index every worker shares (was: a copy in memory per process). Existing screenings
    # are put in by `flask evalhub screening rescreen` (or services.index_missing), from their stored keys.
    op.create_table('screening_doc',
    sa.Column('doc_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('firm_id', sa.Integer(), nullable=True),
    sa.Column('engagement_id', sa.Integer(), nullable=True),
    sa.Column('object_hash', sa.BigInteger(), nullable=True),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('label', sa.String(length=300), nullable=False),
    sa.Column('sentence_keys', sa.LargeBinary(), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('doc_id', name=op.f('pk_screening_doc'))
    )
    with op.batch_alter_table('screening_doc', schema=None) as batch_op:
        batch_op.create_index('ix_screening_doc_engagement', ['engagement_id', 'kind'], unique=False)
        batch_op.create_index('ix_screening_doc_object', ['object_hash', 'kind'], unique=False)
    # The key (bucket) leads each primary key: a lookup asks for a few hundred keys at once.
    op.create_table('screening_posting',
    sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('firm_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('doc_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('key', 'kind', 'firm_id', 'doc_id', name=op.f('pk_screening_posting'))
    )
    op.create_table('screening_key',
    sa.Column('key', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', 'kind', name=op.f('pk_screening_key'))
    )
    op.create_table('screening_band',
    sa.Column('bucket', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('kind', sa.SmallInteger(), autoincrement=False, nullable=False),
    sa.Column('doc_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'kind', 'doc_id', name=op.f('pk_screening_band'))
    )
    # Outside published reports a bureau imports to compare uploads against (外部公开报告).
    op.create_table('reference_document',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('work_plan', 'report', 'self_evaluation', name='submissionkind', native_enum=False,
                              length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('filename', sa.String(length=300), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('firm_name', sa.String(length=200), nullable=True),
    sa.Column('firm_id', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=1000), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('chars', sa.Integer(), nullable=False),
    sa.Column('imported_by_id', sa.Integer(), nullable=True),
    sa.Column('imported_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_reference_document_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['firm_id'], ['firm.id'], name=op.f('fk_reference_document_firm_id_firm')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['user_account.id'],
                            name=op.f('fk_reference_document_imported_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reference_document')),
    sa.UniqueConstraint('bureau_id', 'sha256', name=op.f('uq_reference_document_bureau_id_sha256'))
    )
    with op.batch_alter_table('reference_document', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reference_document_bureau_id'), ['bureau_id'], unique=False)


def downgrade():
    with op.batch_alter_table('reference_document', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reference_document_bureau_id'))
    op.drop_table('reference_document')
    op.drop_table('screening_band')
    op.drop_table('screening_key')
    op.drop_table('screening_posting')
    with op.batch_alter_table('screening_doc', schema=None) as batch_op:
        batch_op.drop_index('ix_screening_doc_object')
        batch_op.drop_index('ix_screening_doc_engagement')
    op.drop_table('screening_doc')
