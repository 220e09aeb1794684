"""Collusion flags on a procurement's bids (checked when the bids are opened, decided by the committee before
scoring) and the red flags precomputed over the bureaus' procurement history."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evalhub.core.enums import LabeledEnum, enum_column
from evalhub.core.mixins import Created, InBureau
from evalhub.core.models import User
from evalhub.core.timeutil import utcnow
from evalhub.extensions import db
from evalhub.procurement.models import Procurement


class CollusionRule(LabeledEnum):
    """The signs of 财政部令第87号 第三十七条 (视为投标人串通投标) as evalhub can compare them."""

    SAME_FILE = ("same_file", "不同投标人的投标文件为同一文件（sha256 相同）")
    SIMILAR_TEXT = ("similar_text", "不同投标人的技术方案文本异常一致")
    SAME_METADATA = ("same_metadata", "不同投标人的投标文件由同一单位或个人编制（文档属性相同）")
    SAME_PERSON = ("same_person", "不同投标人委托同一人或由同一人担任项目负责人/成员")
    IDENTICAL_PRICE = ("identical_price", "不同投标人的投标报价完全相同")
    PRICE_PATTERN = ("price_pattern", "不同投标人的投标报价呈规律性差异")
    SHARED_CONTACT = ("shared_contact", "不同投标人的联系电话、电子邮箱或地址相同")


# Which clause of 第三十七条 each rule reflects, shown beside the flag.
# 财政部令第87号 第三十七条: (四) 投标文件异常一致或者投标报价呈规律性差异; (五) 投标文件相互混装.
CLAUSE = {
    CollusionRule.SAME_FILE: "第三十七条第（四）项：不同供应商的投标文件异常一致；第（五）项：投标文件相互混装",
    CollusionRule.SIMILAR_TEXT: "第三十七条第（四）项：不同供应商的投标文件异常一致",
    CollusionRule.SAME_METADATA: "第三十七条第（一）项：不同供应商的投标文件由同一单位或者个人编制",
    CollusionRule.SAME_PERSON: "第三十七条第（三）项：不同供应商的投标文件载明的项目管理成员或者联系人员为同一人",
    CollusionRule.IDENTICAL_PRICE: "第三十七条第（四）项：投标报价异常一致",
    CollusionRule.PRICE_PATTERN: "第三十七条第（四）项：投标报价呈规律性差异",
    CollusionRule.SHARED_CONTACT: "第三十七条第（二）项：不同供应商委托同一单位或者个人办理投标事宜（联系方式相同）",
}


class FlagDecision(LabeledEnum):
    EXCLUDE = ("exclude", "排除（认定串通，相关投标无效）")
    NOT_COLLUSION = ("not_collusion", "不构成（继续评审，理由载入定标记录）")
    REFER = ("refer", "移送（移送财政部门处理，继续评审）")


class IntegrityCheck(db.Model):
    """That a procurement's bids were compared (at the opening), even when nothing was found."""

    __tablename__ = "integrity_check"

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), unique=True)
    checked_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    bid_count: Mapped[int] = mapped_column(default=0)
    duration_ms: Mapped[int] = mapped_column(default=0)

    procurement: Mapped[Procurement] = relationship()


class CollusionFlag(Created, db.Model):
    """One sign found between bids of one procurement: the rule, the bids, what was compared, and the
    committee's decision with its reason."""

    __tablename__ = "collusion_flag"
    __table_args__ = (sa.UniqueConstraint("procurement_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    procurement_id: Mapped[int] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    rule: Mapped[CollusionRule] = mapped_column(enum_column(CollusionRule))
    key: Mapped[str] = mapped_column(sa.String(200))  # rule and bids: the same sign is flagged once
    bid_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    summary: Mapped[str] = mapped_column(sa.String(1000))
    evidence: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    decision: Mapped[Optional[FlagDecision]] = mapped_column(enum_column(FlagDecision))
    reason: Mapped[Optional[str]] = mapped_column(sa.Text)
    decided_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    decided_at: Mapped[Optional[datetime]] = mapped_column(sa.DateTime)

    procurement: Mapped[Procurement] = relationship()
    decided_by: Mapped[Optional[User]] = relationship()

    @property
    def clause(self) -> str:
        return CLAUSE[self.rule]


class Indicator(LabeledEnum):
    """Red flags on a bureau's procurement history (after the Open Contracting Partnership's Cardinal)."""

    SINGLE_BID = ("single_bid", "竞争性方式仅一家有效投标")
    SHORT_PERIOD = ("short_period", "投标期限仅为法定最短期限")
    LOWBALL = ("lowball", "成交价远低于第二名报价")
    NEAR_CEILING = ("near_ceiling", "成交价异常接近最高限价")
    DOMINANT_FIRM = ("dominant_firm", "一家机构占本局三年成交份额过高")
    LOSING_BIDDER = ("losing_bidder", "频繁投标却从未成交（陪标）")
    ROTATION = ("rotation", "少数机构轮流成交")
    DISQUALIFICATIONS = ("disqualifications", "同一评审委员会认定无效投标过多")
    ROTATION_SKIPPED = ("rotation_skipped", "框架协议轮候跳过入围机构")
    CONTRACT_NOTICE = ("contract_notice_late", "合同公告逾期或未发布")
    RESULT_NOTICE = ("result_notice_late", "结果公告未按期在指定媒体发布")


class RedFlag(db.Model):
    """One indicator over its fence, precomputed by the worker: the page reads these rows only."""

    __tablename__ = "red_flag"
    __table_args__ = (sa.Index("ix_red_flag_bureau_year", "bureau_id", "year"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bureau_id: Mapped[int] = mapped_column(sa.ForeignKey("bureau.id"))
    year: Mapped[int] = mapped_column()
    indicator: Mapped[Indicator] = mapped_column(enum_column(Indicator))
    procurement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("procurement.id"), index=True)
    firm_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("firm.id"), index=True)
    value: Mapped[float] = mapped_column(sa.Float)
    threshold: Mapped[float] = mapped_column(sa.Float)
    explanation: Mapped[str] = mapped_column(sa.String(1000))
    procurement_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    # What the flagged awards delivered: mean review score, rectification rounds, inspection findings and
    # screening risk of their reports (None where nothing was delivered yet).
    quality: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)


class RedFlagRefresh(db.Model):
    """One refresh of the red flags: the region's medians of delivered quality and the fences used."""

    __tablename__ = "red_flag_refresh"

    id: Mapped[int] = mapped_column(primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
    procurements: Mapped[int] = mapped_column(default=0)
    flags: Mapped[int] = mapped_column(default=0)
    duration_ms: Mapped[int] = mapped_column(default=0)
    medians: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    fences: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class RedFlagCase(InBureau, db.Model):
    """A targeted inspection opened from a red flag: the flag's words are its trigger; the inspection's
    outcome is the label the flag earned."""

    __tablename__ = "red_flag_case"

    id: Mapped[int] = mapped_column(primary_key=True)
    indicator: Mapped[Indicator] = mapped_column(enum_column(Indicator))
    procurement_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("procurement.id"))
    firm_id: Mapped[int] = mapped_column(sa.ForeignKey("firm.id"))
    inspection_id: Mapped[int] = mapped_column(sa.ForeignKey("inspection.id"), unique=True)
    opened_by_id: Mapped[Optional[int]] = mapped_column(sa.ForeignKey("user_account.id"))
    opened_at: Mapped[datetime] = mapped_column(sa.DateTime, default=utcnow)
