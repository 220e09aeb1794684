"""contract_notice: the contract announcement (合同公告) of 政府采购法实施条例 第五十条; contract.notice_due_on

Written by hand. "采购人应当自政府采购合同签订之日起2个工作日内，将政府采购合同在省级以上人民政府财政部门指定的媒体上公告，但
政府采购合同中涉及国家秘密、商业秘密的内容除外。" evalhub recorded the signed contract and never announced it.

- contract.notice_due_on: the Beijing date the announcement is due while it is not published (2 working days after
  the signing date on the bureau's calendar, procurement/contract_notices.py ``notice_due``), NULL once published;
  a partial index over the owed ones, so "overdue" is an index range (as engagement.due_on). Existing contracts
  stay NULL, owed nothing here: their bureaus announced them on the designated media, or not, without evalhub
  knowing, and dating them would list every past contract as overdue and remind the bureaus of each. They can
  still be announced (the lateness counted from the signing date).
- contract_notice: one per contract (unique contract_id), what was announced as it was announced (parties, amount,
  service content, dates), when it was due and published, the working days late and why, what was withheld
  (国家秘密/商业秘密) with the bureau's reason, the bureau's upload and the public copy (core/scrub.py).

Revision ID: f7ed976cf8e2
Revises: b2e4a6c8d0f1
Create Date: 2026-12-08 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f7ed976cf8e2'
down_revision = 'b2e4a6c8d0f1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.add_column(sa.Column('notice_due_on', sa.Date(), nullable=True))
        batch_op.create_index('ix_contract_notice_due', ['notice_due_on'], unique=False,
                              postgresql_where=sa.text('notice_due_on IS NOT NULL'),
                              sqlite_where=sa.text('notice_due_on IS NOT NULL'))

    op.create_table('contract_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contract_id', sa.Integer(), nullable=False),
    sa.Column('project_name', sa.String(length=200), nullable=False),
    sa.Column('purchaser_name', sa.String(length=200), nullable=False),
    sa.Column('supplier_name', sa.String(length=120), nullable=False),
    sa.Column('supplier_uscc', sa.String(length=18), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('services', sa.Text(), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('signed_on', sa.Date(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('published_at', sa.DateTime(), nullable=False),
    sa.Column('published_by_id', sa.Integer(), nullable=True),
    sa.Column('late_workdays', sa.Integer(), nullable=False),
    sa.Column('late_reason', sa.String(length=500), nullable=True),
    sa.Column('withheld', sa.Enum('state_secret', 'commercial_secret', 'both', name='withheldcontent', native_enum=False,
                                  length=32), nullable=True),
    sa.Column('withheld_reason', sa.String(length=500), nullable=True),
    sa.Column('uploaded_file_id', sa.Integer(), nullable=False),
    sa.Column('public_file_id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_contract_notice_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['contract_id'], ['contract.id'], name=op.f('fk_contract_notice_contract_id_contract')),
    sa.ForeignKeyConstraint(['public_file_id'], ['stored_file.id'], name=op.f('fk_contract_notice_public_file_id_stored_file')),
    sa.ForeignKeyConstraint(['published_by_id'], ['user_account.id'], name=op.f('fk_contract_notice_published_by_id_user_account')),
    sa.ForeignKeyConstraint(['uploaded_file_id'], ['stored_file.id'], name=op.f('fk_contract_notice_uploaded_file_id_stored_file')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contract_notice')),
    sa.UniqueConstraint('contract_id', name=op.f('uq_contract_notice_contract_id'))
    )
    with op.batch_alter_table('contract_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contract_notice_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_contract_notice_published_at'), ['published_at'], unique=False)


def downgrade():
    with op.batch_alter_table('contract_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contract_notice_published_at'))
        batch_op.drop_index(batch_op.f('ix_contract_notice_bureau_id'))
    op.drop_table('contract_notice')

    with op.batch_alter_table('contract', schema=None) as batch_op:
        batch_op.drop_index('ix_contract_notice_due')
        batch_op.drop_column('notice_due_on')
