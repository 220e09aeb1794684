"""results application: budget-unit users, findings, rectification, application list (issue 15)

Written by hand.

Revision ID: f1c3d5e7a9b2
Revises: e9a2c5d7f4b1
Create Date: 2026-12-05 06:20:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f1c3d5e7a9b2'
down_revision = 'e9a2c5d7f4b1'
branch_labels = None
depends_on = None

_BASE = ("(role IN ('bureau_admin','bureau_staff') AND bureau_id IS NOT NULL AND firm_id IS NULL AND expert_id IS NULL)"
         " OR (role = 'firm_user' AND firm_id IS NOT NULL AND bureau_id IS NULL AND expert_id IS NULL)"
         " OR (role = 'expert' AND expert_id IS NOT NULL AND bureau_id IS NULL AND firm_id IS NULL)"
         " OR (role = 'system_admin' AND firm_id IS NULL AND expert_id IS NULL)")
_WITH_UNITS = _BASE + " OR (role = 'budget_unit' AND bureau_id IS NULL AND firm_id IS NULL AND expert_id IS NULL)"


def _enum(name, *values):
    return sa.Enum(*values, name=name, native_enum=False, length=32)


def upgrade():
    # A budget unit's account: the unit it acts for, and the role in the one-organisation rule.
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget_unit_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_user_account_budget_unit_id'), ['budget_unit_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_user_account_budget_unit_id_budget_unit'), 'budget_unit',
                                    ['budget_unit_id'], ['id'])
        batch_op.drop_constraint(batch_op.f('ck_user_account_one_organisation'), type_='check')
        batch_op.create_check_constraint('one_organisation', sa.text(_WITH_UNITS))

    op.create_table('result_finding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', _enum('findingkind', 'problem', 'recommendation'), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('category', _enum('indicatorcategory', 'decision', 'process', 'output', 'benefit'), nullable=False),
    sa.Column('indicator', sa.String(length=200), nullable=True),
    sa.Column('responsible_unit_id', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.Date(), nullable=True),
    sa.Column('status', _enum('findingstatus', 'draft', 'confirmed', 'planned', 'submitted', 'returned', 'closed'),
              nullable=False),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
    sa.Column('plan', sa.Text(), nullable=True),
    sa.Column('planned_at', sa.DateTime(), nullable=True),
    sa.Column('unit_note', sa.Text(), nullable=True),
    sa.Column('submitted_at', sa.DateTime(), nullable=True),
    sa.Column('verification', _enum('verification', 'done', 'partial', 'not_done'), nullable=True),
    sa.Column('verification_note', sa.Text(), nullable=True),
    sa.Column('verified_at', sa.DateTime(), nullable=True),
    sa.Column('verified_by_id', sa.Integer(), nullable=True),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_result_finding_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['confirmed_by_id'], ['user_account.id'], name=op.f('fk_result_finding_confirmed_by_id_user_account')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_result_finding_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_result_finding_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['responsible_unit_id'], ['budget_unit.id'], name=op.f('fk_result_finding_responsible_unit_id_budget_unit')),
    sa.ForeignKeyConstraint(['verified_by_id'], ['user_account.id'], name=op.f('fk_result_finding_verified_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_finding'))
    )
    with op.batch_alter_table('result_finding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_finding_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_finding_engagement_id'), ['engagement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_finding_responsible_unit_id'), ['responsible_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_result_finding_status'), ['status'], unique=False)

    op.create_table('result_finding_evidence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], name=op.f('fk_result_finding_evidence_file_id_stored_file')),
    sa.ForeignKeyConstraint(['finding_id'], ['result_finding.id'], name=op.f('fk_result_finding_evidence_finding_id_result_finding')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_result_finding_evidence_uploaded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_finding_evidence'))
    )
    with op.batch_alter_table('result_finding_evidence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_finding_evidence_finding_id'), ['finding_id'], unique=False)

    op.create_table('result_finding_escalation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('level', _enum('escalationlevel', 'reminder', 'interview', 'notice'), nullable=False),
    sa.Column('on_date', sa.Date(), nullable=False),
    sa.Column('overdue_days', sa.Integer(), nullable=False),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['finding_id'], ['result_finding.id'], name=op.f('fk_result_finding_escalation_finding_id_result_finding')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_result_finding_escalation')),
    sa.UniqueConstraint('finding_id', 'level', name=op.f('uq_result_finding_escalation_finding_id_level'))
    )
    with op.batch_alter_table('result_finding_escalation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_result_finding_escalation_finding_id'), ['finding_id'], unique=False)

    op.create_table('rectification_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('uploaded_by_id', sa.Integer(), nullable=True),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_rectification_report_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['file_id'], ['stored_file.id'], name=op.f('fk_rectification_report_file_id_stored_file')),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['user_account.id'], name=op.f('fk_rectification_report_uploaded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rectification_report'))
    )
    with op.batch_alter_table('rectification_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rectification_report_engagement_id'), ['engagement_id'], unique=False)

    op.create_table('application_entry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('score', sa.Numeric(precision=6, scale=2), nullable=False),
    sa.Column('grade', _enum('grade', 'excellent', 'good', 'fair', 'poor'), nullable=False),
    sa.Column('proposed', sa.JSON(), nullable=False),
    sa.Column('proposed_percent', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('proposed_basis', sa.String(length=500), nullable=False),
    sa.Column('measures', sa.JSON(), nullable=True),
    sa.Column('cut_percent', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('cut_amount', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(), nullable=True),
    sa.Column('confirmed_by_id', sa.Integer(), nullable=True),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_application_entry_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['confirmed_by_id'], ['user_account.id'], name=op.f('fk_application_entry_confirmed_by_id_user_account')),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_application_entry_engagement_id_engagement')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_entry')),
    sa.UniqueConstraint('engagement_id', name=op.f('uq_application_entry_engagement_id'))
    )
    with op.batch_alter_table('application_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_entry_bureau_id'), ['bureau_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_application_entry_year'), ['year'], unique=False)

    op.create_table('application_filing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('filed_with_id', sa.Integer(), nullable=False),
    sa.Column('filed_at', sa.DateTime(), nullable=False),
    sa.Column('filed_by_id', sa.Integer(), nullable=True),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('bureau_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bureau_id'], ['bureau.id'], name=op.f('fk_application_filing_bureau_id_bureau')),
    sa.ForeignKeyConstraint(['filed_by_id'], ['user_account.id'], name=op.f('fk_application_filing_filed_by_id_user_account')),
    sa.ForeignKeyConstraint(['filed_with_id'], ['bureau.id'], name=op.f('fk_application_filing_filed_with_id_bureau')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_application_filing')),
    sa.UniqueConstraint('bureau_id', 'year', name=op.f('uq_application_filing_bureau_id_year'))
    )
    with op.batch_alter_table('application_filing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_application_filing_bureau_id'), ['bureau_id'], unique=False)


    # The unit's half of 双公开: where and when it published the redacted report.
    op.create_table('unit_publication',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=300), nullable=False),
    sa.Column('published_on', sa.Date(), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_unit_publication_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['user_account.id'], name=op.f('fk_unit_publication_recorded_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_publication')),
    sa.UniqueConstraint('engagement_id', name=op.f('uq_unit_publication_engagement_id'))
    )

    # 征求意见: the draft sent to the unit before the panel, its answer and the firm's response.
    op.create_table('fact_confirmation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engagement_id', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.Integer(), nullable=True),
    sa.Column('draft_file_id', sa.Integer(), nullable=False),
    sa.Column('sent_by_id', sa.Integer(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('agreed', sa.Boolean(), nullable=True),
    sa.Column('unit_text', sa.Text(), nullable=True),
    sa.Column('answered_at', sa.DateTime(), nullable=True),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('firm_response', sa.Text(), nullable=True),
    sa.Column('responded_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['answered_by_id'], ['user_account.id'], name=op.f('fk_fact_confirmation_answered_by_id_user_account')),
    sa.ForeignKeyConstraint(['draft_file_id'], ['stored_file.id'], name=op.f('fk_fact_confirmation_draft_file_id_stored_file')),
    sa.ForeignKeyConstraint(['engagement_id'], ['engagement.id'], name=op.f('fk_fact_confirmation_engagement_id_engagement')),
    sa.ForeignKeyConstraint(['sent_by_id'], ['user_account.id'], name=op.f('fk_fact_confirmation_sent_by_id_user_account')),
    sa.ForeignKeyConstraint(['submission_id'], ['submission.id'], name=op.f('fk_fact_confirmation_submission_id_submission')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fact_confirmation'))
    )
    with op.batch_alter_table('fact_confirmation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fact_confirmation_engagement_id'), ['engagement_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_fact_confirmation_submission_id'), ['submission_id'], unique=False)


def downgrade():
    with op.batch_alter_table('fact_confirmation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fact_confirmation_submission_id'))
        batch_op.drop_index(batch_op.f('ix_fact_confirmation_engagement_id'))
    op.drop_table('fact_confirmation')
    op.drop_table('unit_publication')
    for table, indexes in [('application_filing', ['ix_application_filing_bureau_id']),
                           ('application_entry', ['ix_application_entry_year', 'ix_application_entry_bureau_id']),
                           ('rectification_report', ['ix_rectification_report_engagement_id']),
                           ('result_finding_escalation', ['ix_result_finding_escalation_finding_id']),
                           ('result_finding_evidence', ['ix_result_finding_evidence_finding_id']),
                           ('result_finding', ['ix_result_finding_status', 'ix_result_finding_responsible_unit_id', 'ix_result_finding_engagement_id',
                                        'ix_result_finding_bureau_id'])]:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in indexes:
                batch_op.drop_index(name)
        op.drop_table(table)

    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_user_account_one_organisation'), type_='check')
        batch_op.create_check_constraint('one_organisation', sa.text(_BASE))
        batch_op.drop_constraint(batch_op.f('fk_user_account_budget_unit_id_budget_unit'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_user_account_budget_unit_id'))
        batch_op.drop_column('budget_unit_id')
