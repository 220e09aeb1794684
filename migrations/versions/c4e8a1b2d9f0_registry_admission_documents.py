"""registry: admission documents, firm first accounts (issues 12, 13)

Written by hand. No table changes: the two new admission document kinds (firm_document.kind
"staff_qualifications", "no_violation") fit the existing VARCHAR(32) enum column, which carries no CHECK
constraint (core.enums.enum_column); a firm's first account is an ordinary user_account row.

Revision ID: c4e8a1b2d9f0
Revises: b8d2e5f1c3a4
Create Date: 2026-12-05 06:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c4e8a1b2d9f0'
down_revision = 'b8d2e5f1c3a4'
branch_labels = None
depends_on = None


def upgrade():
    pass  # see the docstring: nothing to change in the schema


def downgrade():
    pass
