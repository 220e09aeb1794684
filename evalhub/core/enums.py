"""Enumerations that carry their Chinese label: one source of truth for UI, exports and the API."""
from __future__ import annotations

import enum
import functools
from typing import Any

import sqlalchemy as sa


class LabeledEnum(str, enum.Enum):
    """``MEMBER = ("value", "中文标签")``; the value is stored, the label is shown."""

    label: str

    def __new__(cls, value: str, label: str):
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.label = label
        return obj

    def __str__(self) -> str:  # so templates and f-strings show the stored value predictably
        return self.value

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(m.value, m.label) for m in cls]

    @property
    def rank(self) -> int:
        """The member's place in the declaration (for enums declared lowest first, e.g. degrees, titles)."""
        return list(type(self)).index(self)

    @classmethod
    def from_label(cls, label: str):
        label = (label or "").strip()
        for m in cls:
            if m.label == label or m.value == label:
                return m
        raise ValueError(label)


def enum_column(enum_cls: type[LabeledEnum]) -> sa.Enum:
    """A portable column type: a VARCHAR holding the value (no PostgreSQL ENUM type to migrate)."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda cls: [m.value for m in cls],
        validate_strings=True,
    )


def written(member: LabeledEnum) -> Any:
    """``member`` as a constant of the statement, written into its SQL rather than bound (a count by status beside
    a list): PostgreSQL's generic plan for the prepared statement then knows it, where with it bound the planner
    may never trust the generic plan and plans the statement at every request."""
    return sa.literal(member, _column_type(type(member)), literal_execute=True)


@functools.cache
def _column_type(enum_cls: type[LabeledEnum]) -> sa.Enum:
    return enum_column(enum_cls)


class BureauLevel(LabeledEnum):
    REGION = ("region", "自治区")
    PREFECTURE = ("prefecture", "州/地区")
    COUNTY = ("county", "县/市")


class Role(LabeledEnum):
    SYSTEM_ADMIN = ("system_admin", "系统管理员")
    BUREAU_ADMIN = ("bureau_admin", "财政局管理员")
    BUREAU_STAFF = ("bureau_staff", "财政局工作人员")
    FIRM_USER = ("firm_user", "第三方机构用户")
    EXPERT = ("expert", "评审专家")
    BUDGET_UNIT = ("budget_unit", "预算单位用户")  # 被评价单位 / 主管部门 (evalhub/results)


class Authority(LabeledEnum):
    """Who decided an account's deactivation, lowest first (``rank``): that authority or a higher one lifts it
    (core/permissions.py ``lifts_deactivation``). A bureau administrator's is its bureau's level: everyone who may
    manage an account stands on one chain of bureaus above it, where the levels strictly rise."""

    FIRM = ("firm", "机构管理员")
    COUNTY = ("county", "县/市财政局管理员")
    PREFECTURE = ("prefecture", "州/地区财政局管理员")
    REGION = ("region", "自治区财政局管理员")
    SYSTEM = ("system", "系统管理员")


# Who works on the bureaus' side (their pages, inspectors' names, expert names): never a firm or an expert.
BUREAU_SIDE = (Role.SYSTEM_ADMIN, Role.BUREAU_ADMIN, Role.BUREAU_STAFF)


class Field(LabeledEnum):
    """Fields of work, shared by firms and experts (DOMAIN.md §4)."""

    FINANCE = ("finance", "财政经济")
    ACCOUNTING = ("accounting", "财务会计")
    LAW = ("law", "法律")
    EDUCATION = ("education", "教育")
    HEALTH = ("health", "医疗卫生")
    AGRICULTURE = ("agriculture", "农业农村")
    WATER = ("water", "水利")
    TRANSPORT = ("transport", "交通运输")
    ENVIRONMENT = ("environment", "生态环境")
    SOCIAL = ("social", "社会保障")
    SCIENCE = ("science", "科学技术")
    CULTURE = ("culture", "文化旅游")
    CONSTRUCTION = ("construction", "城乡建设")
    STATISTICS = ("statistics", "统计")


class JobStatus(LabeledEnum):
    QUEUED = ("queued", "排队中")
    RUNNING = ("running", "运行中")
    SUCCEEDED = ("succeeded", "已完成")
    FAILED = ("failed", "失败")
