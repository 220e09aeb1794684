"""inspection: cases opened from a procurement red flag get their own trigger

A case opened from a red flag (integrity.redflags.open_inspection) was recorded with the trigger "other", whose
lead the inspected firm reads; its lead carries the bureau's screening figures and the flag's explanation. The
new trigger "red_flag" is withheld from the firm like a complaint's or a screening flag's. The column is a
VARCHAR (core.enums.enum_column), so only the rows change: those named by red_flag_case.

Revision ID: a4d6e8f0b2c1
Revises: f3b9d2c5a7e1
Create Date: 2026-12-06
"""
from alembic import op

revision = 'a4d6e8f0b2c1'
down_revision = 'f3b9d2c5a7e1'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE inspection SET trigger = 'red_flag' "
               "WHERE trigger = 'other' AND id IN (SELECT inspection_id FROM red_flag_case)")


def downgrade():
    op.execute("UPDATE inspection SET trigger = 'other' WHERE trigger = 'red_flag'")
