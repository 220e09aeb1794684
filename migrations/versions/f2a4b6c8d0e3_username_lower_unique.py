"""user_account: a login name unique whatever its case, held by the database (a unique index on lower(username))

Written by hand. core/accounts.py ``username_problem`` checked lower(username) with a SELECT before the insert, so
two accounts opened at the same moment as "KRL.Wang" and "krl.wang" were both written. The index makes the second
insert fail (answered 409 by core/concurrency.py), and serves sign-in and 忘记密码, which now find the name
whatever its case. An expression index: SQLite (3.9+) and PostgreSQL alike. On a database that already holds two
names differing only in case the upgrade stops before the index, naming them (``_clashes``) — rename one first
(they cannot both be told apart in the log anyway).

Revision ID: f2a4b6c8d0e3
Revises: e1f3a5c7b9d2
Create Date: 2026-12-07 09:40:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f2a4b6c8d0e3'
down_revision = 'e1f3a5c7b9d2'
branch_labels = None
depends_on = None


# The login names that differ only in case, grouped by the name the index would hold.
_CLASHES = sa.text(
    "SELECT lower(username) AS name_key, username FROM user_account WHERE lower(username) IN ("
    " SELECT lower(username) FROM user_account GROUP BY lower(username) HAVING count(*) > 1)"
    " ORDER BY lower(username), username")


def _clashes(bind) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for key, name in bind.execute(_CLASHES):
        found.setdefault(key, []).append(name)
    return found


def upgrade():
    clashes = _clashes(op.get_bind())
    if clashes:
        listed = "; ".join("、".join(names) for names in clashes.values())
        raise RuntimeError(
            f"以下账户的用户名只有大小写不同，无法建立不区分大小写的唯一索引：{listed}。"
            "请先将每组中的一个账户改名，再重新执行 flask db upgrade。"
            f" Login names differing only in case: {listed}; rename one of each group, then upgrade again.")
    op.create_index('uq_user_account_username_lower', 'user_account', [sa.text('lower(username)')], unique=True)


def downgrade():
    op.drop_index('uq_user_account_username_lower', table_name='user_account')
