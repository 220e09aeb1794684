"""procurement_amendment: 澄清/更正公告 of an open procurement; media_posting.amendment_id

Written by hand. 财政部令第87号 第二十七条 (open tender) and 财库〔2014〕214号 第十条 (competitive consultation) let the
purchaser clarify or amend the documents already issued — published as a 澄清公告/更正公告 on the media of the 采购公告,
its content part of the documents; where it may affect how bids are prepared, every potential supplier is told in
writing at least 15 (consultation: 5) days before the deadline, or the deadline is extended. evalhub could only move
the deadline (procurement/services.py ``change_deadline``).

- procurement_amendment: one row per amendment, numbered 1, 2, … per procurement (unique), with its text, whether
  the bureau says it may affect how bids are prepared, the deadline before and after it (equal when it did not move
  the deadline), the bureau's upload and its public copy (both optional), who published it and when. Nothing to
  backfill: there were none.
- media_posting.amendment_id: its posting on the designated media, recorded as the other notices' (unique; the check
  that exactly one notice is named now counts it too). media_posting.kind is a string column (native_enum=False, no
  check constraint): the new kind 'amendment' needs no change of it.

On SQLite the check is replaced by batch mode (the table copied), on PostgreSQL altered in place. The downgrade
refuses nothing: postings of amendments go with their table (they name a row that no longer exists).

Revision ID: a3d5f7b9c1e2
Revises: 9689ba5996fb
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a3d5f7b9c1e2'
down_revision = '9689ba5996fb'
branch_labels = None
depends_on = None

THREE = ("(CASE WHEN procurement_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN result_notice_id IS NULL THEN 0 ELSE 1 END)"
         " + (CASE WHEN contract_notice_id IS NULL THEN 0 ELSE 1 END)")
FOUR = THREE + " + (CASE WHEN amendment_id IS NULL THEN 0 ELSE 1 END)"


def upgrade():
    op.create_table('procurement_amendment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('affects_bids', sa.Boolean(), nullable=False),
    sa.Column('deadline_before', sa.DateTime(), nullable=False),
    sa.Column('deadline_after', sa.DateTime(), nullable=False),
    sa.Column('uploaded_file_id', sa.Integer(), nullable=True),
    sa.Column('public_file_id', sa.Integer(), nullable=True),
    sa.Column('published_by_id', sa.Integer(), nullable=True),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'],
                            name=op.f('fk_procurement_amendment_procurement_id_procurement')),
    sa.ForeignKeyConstraint(['public_file_id'], ['stored_file.id'],
                            name=op.f('fk_procurement_amendment_public_file_id_stored_file')),
    sa.ForeignKeyConstraint(['published_by_id'], ['user_account.id'],
                            name=op.f('fk_procurement_amendment_published_by_id_user_account')),
    sa.ForeignKeyConstraint(['uploaded_file_id'], ['stored_file.id'],
                            name=op.f('fk_procurement_amendment_uploaded_file_id_stored_file')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_procurement_amendment')),
    sa.UniqueConstraint('procurement_id', 'number', name=op.f('uq_procurement_amendment_procurement_id_number'))
    )
    with op.batch_alter_table('media_posting', schema=None) as batch_op:
        batch_op.add_column(sa.Column('amendment_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_media_posting_amendment_id_procurement_amendment'),
                                    'procurement_amendment', ['amendment_id'], ['id'])
        batch_op.create_unique_constraint(batch_op.f('uq_media_posting_amendment_id'), ['amendment_id'])
        batch_op.drop_constraint(batch_op.f('ck_media_posting_one_notice'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_media_posting_one_notice'), FOUR + " = 1")


def downgrade():
    op.execute("DELETE FROM media_posting WHERE amendment_id IS NOT NULL")
    with op.batch_alter_table('media_posting', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_media_posting_one_notice'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_media_posting_one_notice'), THREE + " = 1")
        batch_op.drop_constraint(batch_op.f('uq_media_posting_amendment_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_media_posting_amendment_id_procurement_amendment'), type_='foreignkey')
        batch_op.drop_column('amendment_id')
    op.drop_table('procurement_amendment')
