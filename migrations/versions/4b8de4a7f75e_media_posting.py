"""media_posting: where and when each notice was posted on the designated media (指定媒体)

Written by hand. 政府采购法 第十一条 and 政府采购信息发布管理办法（财政部令第101号）ask for procurement information on
the media a provincial-or-higher finance department designated (中国政府采购网 and its provincial sub-sites); 87号令
第六十九条 the result notice within 2 working days of the winner, 实施条例 第五十条 the contract announcement within 2
working days of the signing. evalhub recorded only its own publication, which is no designated medium.

- media_posting: one per notice (采购公告 = the procurement, 结果公告, 合同公告; each key unique, exactly one set):
  the medium (and the name of an other one), the URL there, the Beijing posting date, a note, the deadline it is
  measured against and the working days late, who recorded and who last corrected it, with the reason (each
  correction's old values are in its audit event).
- contract.notice_due_on now means "owed until its posting on the designated media is recorded" (it was cleared when
  evalhub's own copy went out). Announcements evalhub published before this revision are not owed again: the bureau
  had nowhere to record the posting it most likely made, and every one of them would otherwise be overdue at once
  on the dashboard, reminded hourly and red-flagged. They show as 未登记指定媒体发布, and the bureau may record it.

Revision ID: 4b8de4a7f75e
Revises: c3e5a7b9d1f2
Create Date: 2026-12-07 15:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '4b8de4a7f75e'
down_revision = 'c3e5a7b9d1f2'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('media_posting',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('procurement', 'result', 'contract', name='noticekind', native_enum=False, length=32),
              nullable=False),
    sa.Column('procurement_id', sa.Integer(), nullable=True),
    sa.Column('result_notice_id', sa.Integer(), nullable=True),
    sa.Column('contract_notice_id', sa.Integer(), nullable=True),
    sa.Column('medium', sa.Enum('ccgp', 'ccgp_xinjiang', 'other', name='designatedmedium', native_enum=False, length=32),
              nullable=False),
    sa.Column('medium_name', sa.String(length=100), nullable=True),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('posted_on', sa.Date(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('late_workdays', sa.Integer(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('corrected_by_id', sa.Integer(), nullable=True),
    sa.Column('corrected_at', sa.DateTime(), nullable=True),
    sa.Column('correction_reason', sa.String(length=500), nullable=True),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.CheckConstraint("(CASE WHEN procurement_id IS NULL THEN 0 ELSE 1 END) + (CASE WHEN result_notice_id IS NULL THEN 0 ELSE 1 END)"
                       " + (CASE WHEN contract_notice_id IS NULL THEN 0 ELSE 1 END) = 1",
                       name=op.f('ck_media_posting_one_notice')),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_media_posting_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['contract_notice_id'], ['contract_notice.id'],
                            name=op.f('fk_media_posting_contract_notice_id_contract_notice')),
    sa.ForeignKeyConstraint(['corrected_by_id'], ['user_account.id'],
                            name=op.f('fk_media_posting_corrected_by_id_user_account')),
    sa.ForeignKeyConstraint(['procurement_id'], ['procurement.id'], name=op.f('fk_media_posting_procurement_id_procurement')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['user_account.id'],
                            name=op.f('fk_media_posting_recorded_by_id_user_account')),
    sa.ForeignKeyConstraint(['result_notice_id'], ['result_notice.id'],
                            name=op.f('fk_media_posting_result_notice_id_result_notice')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_posting')),
    sa.UniqueConstraint('contract_notice_id', name=op.f('uq_media_posting_contract_notice_id')),
    sa.UniqueConstraint('procurement_id', name=op.f('uq_media_posting_procurement_id')),
    sa.UniqueConstraint('result_notice_id', name=op.f('uq_media_posting_result_notice_id'))
    )
    with op.batch_alter_table('media_posting', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_posting_bureau_id'), ['bureau_id'], unique=False)


def downgrade():
    # as before: owed until evalhub's own copy is out
    op.execute("UPDATE contract SET notice_due_on = NULL"
               " WHERE EXISTS (SELECT 1 FROM contract_notice WHERE contract_notice.contract_id = contract.id)")
    with op.batch_alter_table('media_posting', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_posting_bureau_id'))
    op.drop_table('media_posting')
