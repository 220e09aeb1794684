"""publication.uploaded_file_id: the redacted report as the bureau uploaded it; the public gets a copy without
the document properties that name people (author, last modified by, company, comments)

Written by hand. One nullable column; a publication made before it published its upload as it was, so its
upload is its public file.

Revision ID: c7e1a3f5b9d2
Revises: b8e2f4a6c0d1
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa

revision = 'c7e1a3f5b9d2'
down_revision = 'b8e2f4a6c0d1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uploaded_file_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_publication_uploaded_file_id_stored_file'), 'stored_file',
                                    ['uploaded_file_id'], ['id'])
    publication = sa.table('publication', sa.column('redacted_file_id', sa.Integer),
                           sa.column('uploaded_file_id', sa.Integer))
    op.execute(sa.update(publication).where(publication.c.redacted_file_id.is_not(None))
               .values(uploaded_file_id=publication.c.redacted_file_id))


def downgrade():
    with op.batch_alter_table('publication', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_publication_uploaded_file_id_stored_file'), type_='foreignkey')
        batch_op.drop_column('uploaded_file_id')
