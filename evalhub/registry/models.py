"""Firms (第三方机构库), their staff and recusal relations; the expert pool (专家库) and experts' ties."""
from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Iterable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from evalhub.core.batches import batches
from evalhub.core.enums import Field, LabeledEnum, enum_column
from evalhub.core.listing import text_list
from evalhub.core.mixins import Acted, CountedPerBureau, Created, CreatedBy, InBureau
from evalhub.core.models import Bureau, BudgetUnit, StoredFile, User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db


class LegalForm(LabeledEnum):
    LIMITED_COMPANY = ("limited_company", "有限责任公司")
    JOINT_STOCK = ("joint_stock", "股份有限公司")
    GENERAL_PARTNERSHIP = ("general_partnership", "普通合伙企业")
    SPECIAL_PARTNERSHIP = ("special_partnership", "特殊普通合伙企业")
    PUBLIC_INSTITUTION = ("public_institution", "事业单位")
    SOCIAL_ORGANISATION = ("social_organisation", "社会组织")


class FirmKind(LabeledEnum):
    CONSULTANCY = ("consultancy", "咨询公司")
    CPA_FIRM = ("cpa_firm", "会计师事务所")
    APPRAISAL_FIRM = ("appraisal_firm", "资产评估机构")
    LAW_FIRM = ("law_firm", "律师事务所")
    RESEARCH_INSTITUTE = ("research_institute", "科研院所")
    UNIVERSITY = ("university", "高等院校")


class FirmStatus(LabeledEnum):
    PENDING = ("pending", "待审核")
    ADMITTED = ("admitted", "已入库")
    REJECTED = ("rejected", "未通过")
    SUSPENDED = ("suspended", "暂停")
    REMOVED = ("removed", "已移出")
    BLACKLISTED = ("blacklisted", "黑名单")


class FirmDocumentKind(LabeledEnum):
    LICENCE = ("licence", "营业执照")
    QUALITY_CONTROL = ("quality_control", "质量控制制度")
    CONFIDENTIALITY = ("confidentiality", "保密制度")
    TRAINING = ("training", "培训制度")
    CREDIT_RECORD = ("credit_record", "信用记录")
    STAFF_QUALIFICATIONS = ("staff_qualifications", "从业人员资格证明")
    NO_VIOLATION = ("no_violation", "近三年无重大违法违规声明")
    OTHER = ("other", "其他")


class StaffRole(LabeledEnum):
    PROJECT_LEAD = ("project_lead", "项目负责人")
    EVALUATOR = ("evaluator", "评价人员")
    ASSISTANT = ("assistant", "辅助人员")


class CertificateKind(LabeledEnum):
    CPA = ("cpa", "注册会计师")
    ASSET_APPRAISER = ("asset_appraiser", "资产评估师")
    COST_ENGINEER = ("cost_engineer", "造价工程师")
    TAX_ADVISER = ("tax_adviser", "税务师")
    LAWYER = ("lawyer", "律师执业证")
    SENIOR_TITLE = ("senior_title", "高级职称")
    INTERMEDIATE_TITLE = ("intermediate_title", "中级职称")
    OTHER = ("other", "其他")


class RelationKind(LabeledEnum):
    ACCOUNTING_AGENT = ("accounting_agent", "代理记账")
    TAX_AGENT = ("tax_agent", "税务代理")
    AUDIT_CLIENT = ("audit_client", "审计客户")
    OWNERSHIP = ("ownership", "股权关系")
    STAFF_KINSHIP = ("staff_kinship", "人员亲属关系")
    OTHER = ("other", "其他经济利益")


class Degree(LabeledEnum):
    """Ordered lowest to highest; eligibility compares ranks."""

    OTHER = ("other", "其他")
    COLLEGE = ("college", "大专")
    BACHELOR = ("bachelor", "本科")
    MASTER = ("master", "硕士")
    DOCTOR = ("doctor", "博士")


class ProfessionalTitle(LabeledEnum):
    """Ordered lowest to highest; eligibility compares ranks."""

    NONE = ("none", "无")
    JUNIOR = ("junior", "初级")
    INTERMEDIATE = ("intermediate", "中级")
    ASSOCIATE_SENIOR = ("associate_senior", "副高级")
    SENIOR = ("senior", "正高级")


class ExpertStatus(LabeledEnum):
    ACTIVE = ("active", "在库")
    SUSPENDED = ("suspended", "暂停")
    REMOVED = ("removed", "已移出")


class TieKind(LabeledEnum):
    EMPLOYMENT = ("employment", "任职")
    DIRECTOR = ("director", "董事/监事/高管")
    SHAREHOLDER = ("shareholder", "控股股东")
    KINSHIP = ("kinship", "与法定代表人近亲属")
    INTEREST = ("interest", "其他利害关系")


class CounterpartType(LabeledEnum):
    FIRM = ("firm", "第三方机构")
    BUREAU = ("bureau", "财政局")
    BUDGET_UNIT = ("budget_unit", "预算单位")
    OTHER = ("other", "其他单位")


firm_field = sa.Table(
    "firm_field",
    db.metadata,
    sa.Column("firm_id", sa.ForeignKey("firm.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("field", enum_column(Field), primary_key=True),
)

expert_field = sa.Table(
    "expert_field",
    db.metadata,
    sa.Column("expert_id", sa.ForeignKey("expert.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("field", enum_column(Field), primary_key=True),
)


_FIELD_ORDER = {f.value: i for i, f in enumerate(Field)}


class HasFields:
    """Business fields (业务领域) kept in an association table: ``fields_table``, keyed by ``fields_key``."""

    fields_table: ClassVar[sa.Table]
    fields_key: ClassVar[str]

    @classmethod
    def with_field(cls, field: Field) -> sa.ColumnElement[bool]:
        """A WHERE condition: the row lists ``field``."""
        table = cls.fields_table
        return cls.id.in_(sa.select(table.c[cls.fields_key]).where(table.c.field == field))

    @classmethod
    def fields_of(cls, ids: Iterable[int]) -> dict[int, list[Field]]:
        """Each id's fields in the enum's order, for a page or a whole export (a few queries, not one a row)."""
        ids = list(ids)
        table, out = cls.fields_table, {i: [] for i in ids}
        owner = table.c[cls.fields_key]
        for part in batches(ids):  # whatever the export's size
            rows = db.session.execute(sa.select(owner, table.c.field).where(owner.in_(part)))
            for owner_id, field in rows:
                out[owner_id].append(field)
        order = list(Field)
        return {k: sorted(v, key=order.index) for k, v in out.items()}

    @classmethod
    def fields_column(cls) -> sa.Label:
        """Each listed row's fields as one text column, to read with a page instead of apart (``parse_fields``)."""
        table = cls.fields_table
        return sa.select(text_list(table.c.field)).where(table.c[cls.fields_key] == cls.id).correlate(
            cls).scalar_subquery().label("fields")

    @staticmethod
    def parse_fields(text: str | None) -> list[Field]:
        """``fields_column``'s text → the fields in the enum's order (as ``fields_of`` gives them)."""
        return [Field(v) for v in sorted(text.split(","), key=_FIELD_ORDER.__getitem__)] if text else []

    @property
    def fields(self) -> list[Field]:
        return self.fields_of([self.id])[self.id]

    @property
    def fields_label(self) -> str:
        return "、".join(f.label for f in self.fields)


class Firm(InBureau, HasFields, db.Model):
    """A third-party firm and its place in one bureau's library."""

    __tablename__ = "firm"
    fields_table, fields_key = firm_field, "firm_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    uscc: Mapped[str] = mapped_column(sa.String(18), unique=True)  # 统一社会信用代码
    legal_form: Mapped[LegalForm] = mapped_column(enum_column(LegalForm))
    kind: Mapped[FirmKind] = mapped_column(enum_column(FirmKind))
    address: Mapped[str] = mapped_column(sa.String(200))
    legal_representative: Mapped[str] = mapped_column(sa.String(50))
    contact_name: Mapped[str] = mapped_column(sa.String(50))
    contact_phone: Mapped[str] = mapped_column(sa.String(30))
    contact_email: Mapped[Optional[str]] = mapped_column(sa.String(120))
    founded_on: Mapped[Optional[date]] = mapped_column(sa.Date)
    description: Mapped[Optional[str]] = mapped_column(sa.Text)
    # Declared in the application: no major violation in evaluation work in the last 3 years.
    declares_no_major_violation: Mapped[bool] = mapped_column(default=False)

    status: Mapped[FirmStatus] = mapped_column(enum_column(FirmStatus), index=True)
    status_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    status_since: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    status_until: Mapped[Optional[date]] = mapped_column(sa.Date)  # end of a suspension
    applied_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    admitted_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)
    # use_alter: user_account also points at firm, so this key is added after both tables exist.
    created_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id", use_alter=True))

    created_by: Mapped[Optional[User]] = relationship(foreign_keys=[created_by_id])
    documents: Mapped[list["FirmDocument"]] = relationship(back_populates="firm", cascade="all, delete-orphan")
    staff: Mapped[list["FirmStaff"]] = relationship(back_populates="firm", cascade="all, delete-orphan")
    relations: Mapped[list["FirmRelation"]] = relationship(back_populates="firm", cascade="all, delete-orphan")
    status_history: Mapped[list["FirmStatusChange"]] = relationship(
        back_populates="firm", order_by="FirmStatusChange.id", cascade="all, delete-orphan"
    )


# The firm list's order (newest application first): the page walks it and stops after its rows, instead of
# sorting every firm in scope (issue 18).
sa.Index("ix_firm_applied", Firm.applied_at, Firm.id)


class OfFirm:
    """A row about one firm: ``firm_id`` (required, indexed) and ``firm`` (see ``evalhub.core.mixins``)."""

    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"), index=True)

    @declared_attr
    def firm(cls) -> Mapped[Firm]:
        return relationship(Firm, foreign_keys=lambda: [cls.firm_id])


class FirmDocument(db.Model):
    __tablename__ = "firm_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    kind: Mapped[FirmDocumentKind] = mapped_column(enum_column(FirmDocumentKind))
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    uploaded_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)

    firm: Mapped[Firm] = relationship(back_populates="documents")
    file: Mapped[StoredFile] = relationship()


class FirmStatusChange(Acted, db.Model):
    """History of a firm's library status: who changed it, why, from when until when."""

    __tablename__ = "firm_status_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    from_status: Mapped[Optional[FirmStatus]] = mapped_column(enum_column(FirmStatus))
    to_status: Mapped[FirmStatus] = mapped_column(enum_column(FirmStatus))
    reason: Mapped[str] = mapped_column(sa.String(500))
    effective_from: Mapped[date] = mapped_column(sa.Date)
    effective_until: Mapped[Optional[date]] = mapped_column(sa.Date)

    firm: Mapped[Firm] = relationship(back_populates="status_history")


class FirmStaff(Created, db.Model):
    """A member of a firm's roster. The identity number is stored encrypted and shown masked."""

    __tablename__ = "firm_staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    role: Mapped[StaffRole] = mapped_column(enum_column(StaffRole))
    id_number_encrypted: Mapped[str] = mapped_column(sa.String(300))
    id_number_masked: Mapped[str] = mapped_column(sa.String(18))
    # Keyed hash: finds the same person across firms without decrypting anything.
    id_number_digest: Mapped[str] = mapped_column(sa.String(64), index=True)
    title: Mapped[Optional[str]] = mapped_column(sa.String(50))
    years_experience: Mapped[int] = mapped_column(default=0)
    phone: Mapped[Optional[str]] = mapped_column(sa.String(30))
    active: Mapped[bool] = mapped_column(default=True)
    # The Beijing date the firm took the member off its roster (set with active=False): avoidance still counts a
    # 劳动关系 that ended within the look-back window (expert.tie_years, 3 years by default).
    left_on: Mapped[Optional[date]] = mapped_column(sa.Date)

    firm: Mapped[Firm] = relationship(back_populates="staff")
    certificates: Mapped[list["StaffCertificate"]] = relationship(
        back_populates="staff", cascade="all, delete-orphan"
    )


class StaffCertificate(db.Model):
    __tablename__ = "staff_certificate"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(sa.ForeignKey("firm_staff.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CertificateKind] = mapped_column(enum_column(CertificateKind))
    number: Mapped[Optional[str]] = mapped_column(sa.String(50))
    issued_on: Mapped[Optional[date]] = mapped_column(sa.Date)

    staff: Mapped[FirmStaff] = relationship(back_populates="certificates")


class FirmRelation(CreatedBy, db.Model):
    """Recusal register (回避): an economic relation between a firm and a bureau or budget unit."""

    __tablename__ = "firm_relation"
    __table_args__ = (
        sa.CheckConstraint(
            "(bureau_id IS NOT NULL AND budget_unit_id IS NULL) OR (bureau_id IS NULL AND budget_unit_id IS NOT NULL)",
            name="one_counterpart",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"), index=True)
    budget_unit_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"), index=True)
    kind: Mapped[RelationKind] = mapped_column(enum_column(RelationKind))
    start_date: Mapped[date] = mapped_column(sa.Date)
    end_date: Mapped[Optional[date]] = mapped_column(sa.Date)
    note: Mapped[Optional[str]] = mapped_column(sa.String(300))

    firm: Mapped[Firm] = relationship(back_populates="relations")
    bureau: Mapped[Optional[Bureau]] = relationship()
    budget_unit: Mapped[Optional[BudgetUnit]] = relationship()
    # who recorded it: the firm may end only a relation it declared itself ("firm.relation.end")
    created_by: Mapped[Optional[User]] = relationship(foreign_keys=lambda: [FirmRelation.created_by_id], viewonly=True)

    @property
    def counterpart_name(self) -> str:
        return self.bureau.name if self.bureau else (self.budget_unit.name if self.budget_unit else "")

    def active_on(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or self.end_date >= day)


class FirmCount(CountedPerBureau, db.Model):
    """How many firms each bureau's library holds at each status: the dashboard's firm card sums these few rows
    over the user's library (``registry.counts``) instead of counting the firms, which grow with the province
    (issue 18). Recounted from ``firm`` for each bureau a transaction touched, just before it commits; no row
    for a count of 0."""

    __tablename__ = "firm_count"

    status: Mapped[FirmStatus] = mapped_column(enum_column(FirmStatus), primary_key=True)


class ExpertCount(CountedPerBureau, db.Model):
    """How many experts each bureau's pool holds at each status (the dashboard's expert card, as ``FirmCount``)."""

    __tablename__ = "expert_count"

    status: Mapped[ExpertStatus] = mapped_column(enum_column(ExpertStatus), primary_key=True)


class Expert(InBureau, Created, HasFields, db.Model):
    """A member of a bureau's expert pool."""

    __tablename__ = "expert"
    fields_table, fields_key = expert_field, "expert_id"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(50))
    id_number_encrypted: Mapped[str] = mapped_column(sa.String(300))
    id_number_masked: Mapped[str] = mapped_column(sa.String(18))
    id_number_digest: Mapped[str] = mapped_column(sa.String(64), unique=True)
    employer: Mapped[str] = mapped_column(sa.String(120))
    title: Mapped[ProfessionalTitle] = mapped_column(enum_column(ProfessionalTitle))
    degree: Mapped[Degree] = mapped_column(enum_column(Degree))
    years_in_field: Mapped[int] = mapped_column()
    birth_year: Mapped[int] = mapped_column()
    phone: Mapped[Optional[str]] = mapped_column(sa.String(30))
    email: Mapped[Optional[str]] = mapped_column(sa.String(120))
    status: Mapped[ExpertStatus] = mapped_column(enum_column(ExpertStatus), default=ExpertStatus.ACTIVE, index=True)
    status_reason: Mapped[Optional[str]] = mapped_column(sa.String(500))
    available: Mapped[bool] = mapped_column(default=True)
    unavailable_until: Mapped[Optional[date]] = mapped_column(sa.Date)
    availability_note: Mapped[Optional[str]] = mapped_column(sa.String(200))

    ties: Mapped[list["ExpertTie"]] = relationship(back_populates="expert", cascade="all, delete-orphan")


class ExpertTie(Created, db.Model):
    """A declared relationship used for avoidance: employment, directorship, shareholding, kinship, interest."""

    __tablename__ = "expert_tie"

    id: Mapped[int] = mapped_column(primary_key=True)
    expert_id: Mapped[int] = mapped_column(sa.ForeignKey("expert.id"), index=True)
    counterpart_type: Mapped[CounterpartType] = mapped_column(enum_column(CounterpartType))
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    bureau_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("bureau.id"))
    budget_unit_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("budget_unit.id"))
    counterpart_name: Mapped[str] = mapped_column(sa.String(120))
    kind: Mapped[TieKind] = mapped_column(enum_column(TieKind))
    start_date: Mapped[date] = mapped_column(sa.Date)
    end_date: Mapped[Optional[date]] = mapped_column(sa.Date)  # None: still current
    note: Mapped[Optional[str]] = mapped_column(sa.String(300))

    expert: Mapped[Expert] = relationship(back_populates="ties")
    firm: Mapped[Optional[Firm]] = relationship()


class PointKind(LabeledEnum):
    """What a person's points (失信记分) were given for; each kind's points are a bureau setting."""

    REPORT_RETURNED = ("report_returned", "评价报告评审未通过退回整改")
    FINDING_MINOR = ("finding_minor", "监督检查发现轻微问题")
    FINDING_GENERAL = ("finding_general", "监督检查发现一般问题")
    FINDING_SERIOUS = ("finding_serious", "监督检查发现严重问题")
    FINDING_INTENTIONAL = ("finding_intentional", "监督检查发现故意违规")


class StaffPoint(OfFirm, InBureau, Acted, db.Model):
    """Points (失信记分) against one person of a firm's roster, by the bureau that decided, from one source
    (a returned report's panel, an inspection finding). The person is ``person_digest`` (the keyed hash of the
    identity number): the record follows them to another firm's roster. ``firm``: the firm they were with then;
    ``bureau``: the bureau that decided."""

    __tablename__ = "staff_point"
    # One source charges one person once, however often the deciding service is called.
    __table_args__ = (sa.UniqueConstraint("staff_id", "source_type", "source_id", name="uq_staff_point_source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(sa.ForeignKey("firm_staff.id"), index=True)
    person_digest: Mapped[str] = mapped_column(sa.String(64), index=True)
    kind: Mapped[PointKind] = mapped_column(enum_column(PointKind))
    points: Mapped[int] = mapped_column()
    occurred_on: Mapped[date] = mapped_column(sa.Date)  # Beijing date of the decision; the window counts from it
    as_lead: Mapped[bool] = mapped_column(default=False)  # as the lead evaluator (主评人), or a team member
    reference: Mapped[Optional[str]] = mapped_column(sa.String(40))  # the engagement's reference
    source_type: Mapped[str] = mapped_column(sa.String(40))
    source_id: Mapped[int] = mapped_column()
    link: Mapped[Optional[str]] = mapped_column(sa.String(200))
    note: Mapped[str] = mapped_column(sa.String(500))

    staff: Mapped[FirmStaff] = relationship()
