"""result_notice.supplier_name, supplier_uscc: the supplier as the notice published it

Written by hand. A published result notice does not change; its page read the supplier's name and credit code
from the live firm row, so a firm renamed later renamed its old notices. Two columns, filled for the notices
already out from their own published text ("成交供应商：<name>（统一社会信用代码 <code>）", the only wording
procurement.services has written), else from the firm row as it stands today, then made NOT NULL.

Revision ID: c2d4f6a8b0e3
Revises: c7e1a3f5b9d2
Create Date: 2026-12-07
"""
import re

from alembic import op
import sqlalchemy as sa

revision = 'c2d4f6a8b0e3'
down_revision = 'c7e1a3f5b9d2'
branch_labels = None
depends_on = None

_PUBLISHED = re.compile(r"成交供应商：(?P<name>.+?)（统一社会信用代码 (?P<uscc>[0-9A-Z]{18})）")


def upgrade():
    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supplier_name', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('supplier_uscc', sa.String(length=18), nullable=True))

    backfill(op.get_bind())

    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.alter_column('supplier_name', existing_type=sa.String(length=120), nullable=False)
        batch_op.alter_column('supplier_uscc', existing_type=sa.String(length=18), nullable=False)


def backfill(bind) -> None:
    notice = sa.table('result_notice', sa.column('id', sa.Integer), sa.column('firm_id', sa.Integer),
                      sa.column('text', sa.Text), sa.column('supplier_name', sa.String),
                      sa.column('supplier_uscc', sa.String))
    firm = sa.table('firm', sa.column('id', sa.Integer), sa.column('name', sa.String), sa.column('uscc', sa.String))
    rows = bind.execute(sa.select(notice.c.id, notice.c.text, firm.c.name, firm.c.uscc)
                        .join(firm, firm.c.id == notice.c.firm_id).order_by(notice.c.id)).all()
    for notice_id, text, name, uscc in rows:
        published = _PUBLISHED.search(text or "")
        if published:
            name, uscc = published.group('name'), published.group('uscc')
        bind.execute(sa.update(notice).where(notice.c.id == notice_id).values(supplier_name=name[:120], supplier_uscc=uscc))


def downgrade():
    with op.batch_alter_table('result_notice', schema=None) as batch_op:
        batch_op.drop_column('supplier_uscc')
        batch_op.drop_column('supplier_name')
