"""result_notice.media_due_on: the result notice's posting on the designated media owed until recorded

Written by hand. 财政部令第87号 第六十九条: the result notice (中标/成交结果公告) "自中标人确定之日起2个工作日内，在省级以上
财政部门指定的媒体上公告". evalhub kept the lateness on the posting once recorded, and nothing said that a notice was
still not posted past its 2 working days.

- result_notice.media_due_on: the Beijing date the posting is due while it is owed (2 working days after the notice's
  publication in evalhub — the winner determined — on the bureau's calendar, procurement/media.py ``result_due``),
  NULL once the posting is recorded or the notice revoked; a partial index over the owed ones, so "overdue" is an
  index range (as contract.notice_due_on). Existing notices stay NULL, owed nothing here (as was decided for the
  contracts): their bureaus posted them on the designated media, or not, without evalhub knowing, and dating them now
  would list every past result as overdue on the dashboard, remind the bureaus of each and red-flag them. They can
  still be recorded, measured against the 2 working days as before.

Revision ID: c1365a838aba
Revises: 4b8de4a7f75e
Create Date: 2026-12-07 16:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c1365a838aba'
down_revision = '4b8de4a7f75e'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('media_due_on', sa.Date(), nullable=True))
        batch_op.create_index('ix_result_notice_media_due', ['media_due_on'], unique=False,
                              postgresql_where=sa.text('media_due_on IS NOT NULL'),
                              sqlite_where=sa.text('media_due_on IS NOT NULL'))


def downgrade():
    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.drop_index('ix_result_notice_media_due')
        batch_op.drop_column('media_due_on')
