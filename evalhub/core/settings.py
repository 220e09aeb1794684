"""Bureau settings: rule parameters that DOMAIN.md marks as defaults.

A bureau's own value wins; otherwise its parent's, up to the region; otherwise the default here.
A bureau sets its own value (``set_setting``) and may take it back (``clear_setting``: 恢复沿用上级).
A domain declares its own settings beside its rules with ``register(SettingDef(...), ...)`` at import;
the settings page lists them all, grouped by section.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from evalhub.core import audit, bureau_tree, concurrency
from evalhub.core.errors import ValidationFailed
from evalhub.core.inputs import control_error, name_error
from evalhub.core.models import Bureau, BureauSetting, User
from evalhub.extensions import db


@dataclass(frozen=True)
class SettingDef:
    key: str
    label: str
    section: str
    default: Any
    kind: str = "int"  # int, decimal, choice, lines (a list of names, one per line)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[tuple[str, str], ...] = ()
    help: str = ""
    odd: bool = False  # an int that must be odd (a panel's size: its majority must be able to decide)
    # The key whose value applies where no bureau up the chain set this one (default None): a narrower setting
    # (a pass mark for one 委托事项) that follows the general one until a bureau chooses otherwise.
    fallback: str = ""

    def parse(self, raw: Any) -> Any:
        if self.kind == "lines":
            items = raw if isinstance(raw, list) else str(raw or "").replace("、", "\n").splitlines()
            items = list(dict.fromkeys(i.strip() for i in items if str(i).strip()))
            low, high = int(self.minimum or 1), int(self.maximum or 50)
            if not low <= len(items) <= high:
                raise ValidationFailed(f"“{self.label}”应有 {low}–{high} 项，每行一项。", {self.key: f"应有 {low}–{high} 项"})
            if any(len(i) > 30 for i in items):
                raise ValidationFailed(f"“{self.label}”每项不超过 30 个字。", {self.key: "每项不超过 30 个字"})
            for item in items:  # names the checks match text against: no control or invisible characters
                if message := control_error(item) or name_error(item):
                    raise ValidationFailed(f"“{self.label}”{message}。", {self.key: message})
            return items
        if self.kind == "choice":
            if raw not in {c[0] for c in self.choices}:
                raise ValidationFailed(f"“{self.label}”的取值无效。", {self.key: "取值无效"})
            return raw
        try:
            value = int(raw) if self.kind == "int" else float(raw)
            if not math.isfinite(value):  # "nan" and "inf" parse as floats and pass any bound
                raise ValueError(raw)
        except (TypeError, ValueError, OverflowError):
            raise ValidationFailed(f"“{self.label}”必须是数字。", {self.key: "必须是数字"})
        if self.minimum is not None and value < self.minimum:
            raise ValidationFailed(f"“{self.label}”不能小于 {self.minimum:g}。", {self.key: f"不能小于 {self.minimum:g}"})
        if self.maximum is not None and value > self.maximum:
            raise ValidationFailed(f"“{self.label}”不能大于 {self.maximum:g}。", {self.key: f"不能大于 {self.maximum:g}"})
        if self.odd and value % 2 == 0:
            raise ValidationFailed(f"“{self.label}”应为单数。", {self.key: "应为单数"})
        return value

    def text(self, value: Any) -> str:
        """A value as the settings page shows it: a choice by its label, a list joined."""
        if self.kind == "choice":
            return dict(self.choices).get(value, str(value))
        if self.kind == "lines" and isinstance(value, list):
            return "、".join(str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)


_DEGREES = (("college", "大专"), ("bachelor", "本科"), ("master", "硕士"), ("doctor", "博士"))
_TITLES = (("junior", "初级"), ("intermediate", "中级"), ("associate_senior", "副高级"), ("senior", "正高级"))

SETTINGS: dict[str, SettingDef] = {
    s.key: s
    for s in [
        SettingDef("expert.min_years", "专家最低从业年限（年）", "专家库", 10, minimum=0, maximum=50),
        SettingDef("expert.min_degree", "专家最低学历", "专家库", "bachelor", kind="choice", choices=_DEGREES),
        SettingDef("expert.min_title", "专家最低职称", "专家库", "intermediate", kind="choice", choices=_TITLES),
        SettingDef("expert.max_age", "专家最高年龄（周岁）", "专家库", 65, minimum=30, maximum=80),
        SettingDef("expert.tie_years", "专家回避关系追溯年限（年）", "专家库", 3, minimum=0, maximum=10),
        SettingDef("firm.max_key_evaluations", "每家机构每年承接本局重点评价上限（项）", "第三方机构库", 5, minimum=1, maximum=100),
        SettingDef("firm.rotation_years", "同一预算单位不得连续评价年限（年）", "第三方机构库", 1, minimum=0, maximum=5,
                   help="0 表示不限制；1 表示不得连续两年评价同一预算单位。"),
        SettingDef("plan.min_items_region", "自治区本级每年重点评价最少项目数", "评价计划", 10, minimum=0, maximum=200),
        SettingDef("plan.min_items_prefecture", "州（地区）本级每年重点评价最少项目数", "评价计划", 10, minimum=0, maximum=200),
        SettingDef("plan.min_items_county", "县（市）每年重点评价最少项目数", "评价计划", 5, minimum=0, maximum=200),
        SettingDef("procurement.low_bid_ratio", "异常低价认定线（占有效报价平均值的百分比）", "采购", 70,
                   minimum=10, maximum=100, help="低于该比例的报价须由投标人书面说明，评审委员会认定后方可中标。"),
        SettingDef("procurement.min_bids_consultation", "竞争性磋商最少有效响应供应商数", "采购", 2, minimum=2, maximum=10),
        SettingDef("review.report_chapters", "评价报告章节（每行一项，按顺序）", "专家评审",
                   ["基本情况", "绩效评价工作开展情况", "综合评价情况及评价结论", "绩效评价指标分析", "主要经验及做法",
                    "存在的问题及原因分析", "有关建议", "其他需要说明的问题"], kind="lines", minimum=3, maximum=20,
                   help="默认为财预〔2020〕10号的八个章节；机器检查和报告筛查按此检查章节是否齐全。"),
        SettingDef("screening.show_risk_to_experts", "评审专家可见报告筛查风险分", "报告筛查", "off", kind="choice",
                   choices=(("off", "不可见（默认）"), ("on", "可见")),
                   help="专家始终可见机器检查结果；风险分默认不给专家看，以免影响独立评分。"),
        SettingDef("screening.spot_check_share", "重点抽查比例（占当年报告的百分比）", "报告筛查", 10, minimum=1, maximum=100,
                   help="筛查队列中排名靠前的这一比例标为建议抽查，也是模型“抽查比例内精确率”的口径。"),
        SettingDef("review.plan_pass_mark", "实施方案评审通过分", "专家评审", 80, minimum=0, maximum=100),
        SettingDef("review.report_pass_mark", "评价报告评审通过分（低于此分退回整改）", "专家评审", 90, minimum=0, maximum=100),
        SettingDef("review.plan_panel_size", "实施方案评审专家人数（单数）", "专家评审", 3, minimum=3, maximum=9, odd=True),
        SettingDef("review.report_panel_size", "评价报告评审专家人数（单数）", "专家评审", 5, minimum=3, maximum=9, odd=True),
        SettingDef("review.trimmed_mean_from", "专家人数达到多少时去掉最高分和最低分", "专家评审", 5, minimum=3, maximum=99),
        SettingDef("review.spread_flag", "专家评分极差超过多少分时提示分歧", "专家评审", 15, minimum=0, maximum=100),
        SettingDef("review.max_rounds", "报告最多评审轮次（含首轮）", "专家评审", 3, minimum=1, maximum=10,
                   help="轮次用尽仍未通过的报告，由财政局决定扣分验收或终止；默认 3 轮，即最多退回整改 2 次。"),
        SettingDef("review.load_cap", "每位专家同时在审任务上限", "专家评审", 3, minimum=1, maximum=20),
        SettingDef("review.same_firm_per_year", "同一专家每年评审同一机构次数上限", "专家评审", 3, minimum=1, maximum=20),
        SettingDef("review.respond_days", "专家答复邀请期限（天）", "专家评审", 3, minimum=1, maximum=30),
        SettingDef("review.review_days", "专家完成评审期限（天）", "专家评审", 10, minimum=1, maximum=60),
        SettingDef("review.resubmit_days", "机构提交整改稿期限（天）", "专家评审", 15, minimum=1, maximum=90),
        SettingDef("review.remind_days_before", "到期前几天提醒", "专家评审", 2, minimum=0, maximum=30),
        SettingDef("credit.weight_quality", "执业质量分值", "信用评价", 40, minimum=0, maximum=100),
        SettingDef("credit.weight_performance", "合同履行分值", "信用评价", 15, minimum=0, maximum=100),
        SettingDef("credit.weight_feedback", "委托方评价分值", "信用评价", 20, minimum=0, maximum=100),
        SettingDef("credit.weight_supervision", "监督检查分值", "信用评价", 15, minimum=0, maximum=100),
        SettingDef("credit.weight_external", "外部信用分值", "信用评价", 10, minimum=0, maximum=100),
        SettingDef("credit.deduct_minor", "轻微问题扣分", "信用评价", 1, minimum=0, maximum=100),
        SettingDef("credit.deduct_general", "一般问题扣分", "信用评价", 3, minimum=0, maximum=100),
        SettingDef("credit.deduct_serious", "严重问题扣分", "信用评价", 8, minimum=0, maximum=100),
        SettingDef("credit.deduct_complaint", "每件查实投诉扣分", "信用评价", 2, minimum=0, maximum=100),
        SettingDef("credit.deduct_round", "每多一轮整改扣分（合同履行）", "信用评价", 2, minimum=0, maximum=100),
        SettingDef("credit.cut_a", "A 级分数线", "信用评价", 90, minimum=0, maximum=100),
        SettingDef("credit.cut_b", "B 级分数线", "信用评价", 80, minimum=0, maximum=100),
        SettingDef("credit.cut_c", "C 级分数线", "信用评价", 60, minimum=0, maximum=100),
        SettingDef("credit.objection_days", "公示期（工作日）", "信用评价", 5, minimum=1, maximum=30),
        SettingDef("credit.answer_days", "异议答复期限（工作日）", "信用评价", 10, minimum=1, maximum=60),
        SettingDef("supervision.random_ratio", "不定向抽查比例（%）", "监督检查", 10, minimum=10, maximum=100,
                   help="不低于 10%（自治州要求）。"),
        SettingDef("security.require_totp_admins", "管理员必须使用两步验证（TOTP）", "账户安全", "off", kind="choice",
                   choices=(("off", "不强制（默认）"), ("on", "强制")),
                   help="开启后，本局及下级财政局的管理员下次登录时须先绑定验证器（如手机上的身份验证器应用），"
                        "此后每次登录须输入动态验证码；自治区财政厅的设置也适用于系统管理员。"),
        SettingDef("supervision.complaints_per_hour", "同一来源每小时最多投诉件数", "监督检查", 5, minimum=1, maximum=100),
    ]
}


def register(*defs: SettingDef) -> None:
    """Add a domain's settings (called at import; a key is declared once)."""
    for d in defs:
        if d.key in SETTINGS and SETTINGS[d.key] != d:
            raise RuntimeError(f"setting {d.key} declared twice")
        SETTINGS[d.key] = d


_CACHE = "evalhub.settings"


_HELD = "evalhub.settings.held"  # {key: {bureau_id: own value or None}}: one key read for some bureaus
_BUREAUS = "evalhub.settings.bureaus"  # {bureau_id: {key: own value}}: every own value of these bureaus


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_CACHE, None)
    session.info.pop(_HELD, None)
    session.info.pop(_BUREAUS, None)


def hold(key: str, values: dict[int, Any]) -> None:
    """Keep one key's own values (None: not set) of the given bureaus, read alongside something else, so that
    ``get_setting`` answers it without reading every bureau's values."""
    db.session.info.setdefault(_HELD, {}).setdefault(key, {}).update(values)


def hold_bureaus(values: dict[int, dict[str, Any]]) -> None:
    """Keep every own value of the given bureaus ({bureau id: {key: value}}, a bureau that set none: {}), read
    alongside something else (the signed-in user's tree, ``permissions.load_user``), so that ``get_setting``
    answers any key along their walk up without a statement."""
    db.session.info.setdefault(_BUREAUS, {}).update(values)


def _overrides() -> dict[tuple[int, str], Any]:
    """Every bureau's own values, read once per database session (a request, a job, a CLI run) — the
    table is small and rules read it in loops. ``set_setting`` clears the copy."""
    cache = db.session.info.get(_CACHE)
    if cache is None:
        cache = {(b, k): v for b, k, v in db.session.execute(
            sa.select(BureauSetting.bureau_id, BureauSetting.key, BureauSetting.value))}
        db.session.info[_CACHE] = cache
    return cache


def get_setting(bureau: Any, key: str) -> Any:
    """``key``'s value for ``bureau`` (a ``Bureau`` or a held ``TreeBureau``; None: the default): its own, else the
    nearest upper bureau's, else the default."""
    definition = SETTINGS[key]
    if bureau is None:
        return _unset(bureau, definition)
    return _walk(bureau, bureau_tree.chain_ids(bureau), definition)


def inherited(bureau: Any, key: str) -> Any:
    """The value that would apply to ``bureau`` without its own: the nearest upper bureau's, else (the whole walk
    up, the bureau's own included) the fallback's, else the default — what ``clear_setting`` leaves in force."""
    return _walk(bureau, bureau_tree.chain_ids(bureau)[1:], SETTINGS[key])


def _walk(bureau: Any, chain: list[int], definition: SettingDef) -> Any:
    """The first value set along ``chain`` (bureau ids, nearest first), else ``_unset``."""
    key = definition.key
    info = db.session.info
    if _CACHE not in info and (_BUREAUS in info or _HELD in info):
        # answered from the held values when they cover the whole walk up; otherwise every bureau's are read
        whole, held = info.get(_BUREAUS, {}), info.get(_HELD, {}).get(key, {})
        for bureau_id in chain:
            own = whole.get(bureau_id)
            if own is not None:
                value = own.get(key)
            elif bureau_id in held:
                value = held[bureau_id]
            else:
                break
            if value is not None:
                return value
        else:
            return _unset(bureau, definition)
    overrides = _overrides()
    for bureau_id in chain:
        value = overrides.get((bureau_id, key))
        if value is not None:
            return value
    return _unset(bureau, definition)


def _unset(bureau: Any, definition: SettingDef) -> Any:
    """The value of a setting no bureau up the chain set: its fallback's value for the bureau (the whole walk up
    again, so a county's general mark beats the region's default), else its default."""
    return get_setting(bureau, definition.fallback) if definition.fallback else definition.default


def effective_settings(bureau: Bureau) -> list[tuple[SettingDef, Any, bool]]:
    """Every setting with its effective value and whether this bureau set it itself."""
    own = dict(db.session.execute(
        sa.select(BureauSetting.key, BureauSetting.value).where(BureauSetting.bureau_id == bureau.id)
    ).all())
    return [(d, own[k] if k in own else get_setting(bureau, k), k in own) for k, d in SETTINGS.items()]


def _lock(bureau: Bureau) -> None:
    """One change to a bureau's settings at a time (set, clear; two admins, a double click): its own row is read
    under the lock, so a clear and a set at once do not write a row the other just deleted, and a rule that reads
    the bureau's other values reads them as the request before left them."""
    # The bureaus above too, from the root down (one order: no two changes wait for each other): a change here and one
    # above at once would each check the values that must hold together against the other's old value.
    for bureau_id in reversed(bureau_tree.chain_ids(bureau)):
        concurrency.serialise(f"bureau_setting:{bureau_id}")
    _forget()  # values copied before the wait may predate the request before's commit


def _own_row(bureau: Bureau, key: str) -> BureauSetting | None:
    return db.session.execute(
        sa.select(BureauSetting).where(BureauSetting.bureau_id == bureau.id, BureauSetting.key == key)
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _forget() -> None:
    """Every copy of the values this session holds (``_overrides``, held keys, the account's tree): read again."""
    db.session.info.pop(_CACHE, None)
    db.session.info.pop(_HELD, None)
    db.session.info.pop(_BUREAUS, None)


# Who may change a bureau's settings is the permission engine's rule ("bureau.settings": the system administrator,
# the bureau's own administrator). core.permissions reads the settings, so it registers the check here (``guard``)
# rather than this module importing it; until it has, every change is refused: never one unchecked.
_GUARD: list[Callable[[User, Bureau], None]] = []


def guard(fn: Callable[[User, Bureau], None]) -> Callable[[User, Bureau], None]:
    """Register ``fn(actor, bureau)``, which raises ``PermissionDenied`` unless ``actor`` may change ``bureau``'s
    settings (core.permissions; one check, replaced if registered again)."""
    _GUARD[:] = [fn]
    return fn


def _require_may_change(bureau: Bureau, actor: User) -> None:
    if not _GUARD:
        raise RuntimeError("core.permissions has not registered who may change a bureau's settings")
    _GUARD[0](actor, bureau)


def _definition(key: str) -> SettingDef:
    definition = SETTINGS.get(key)
    if definition is None:
        raise ValidationFailed(f"未知的设置项：{key}", {"key": "未知的设置项"})
    return definition


def _check(definition: SettingDef, raw: Any) -> Any:
    """The rule a value of the setting must meet to be in force for a bureau: one place for a value set and for the
    value a clear leaves in force, so that clearing never puts in force what setting would refuse."""
    return definition.parse(raw)


def set_setting(bureau: Bureau, key: str, raw: Any, actor: User) -> Any:
    """One value, checked alone: what a bureau enters goes through ``save_settings``, which also checks the values
    that must hold together once all of the page's are set. By one who may change the bureau's settings, on every
    path (the page checked it; a later caller must not walk around it)."""
    _require_may_change(bureau, actor)
    definition = _definition(key)
    value = _check(definition, raw)
    _lock(bureau)
    row = _own_row(bureau, key)
    old = row.value if row else get_setting(bureau, key)
    if row is None:
        row = BureauSetting(bureau_id=bureau.id, key=key, value=value, updated_by_id=actor.id)
        db.session.add(row)
    else:
        row.value = value
        row.updated_by_id = actor.id
    db.session.flush()
    _forget()
    audit.record("setting.changed", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} 修改设置“{definition.label}”：{old} → {value}",
                 payload={"key": key, "old": old, "new": value})
    return value


# Settings each valid alone that must hold together (a domain's: the credit weights add up to 100): registered by
# the domain that knows the rule (core imports none), checked whenever a bureau sets or clears one of their keys.
@dataclass(frozen=True)
class TogetherRule:
    keys: frozenset[str]
    problems: Callable[[Bureau], list[str]]  # what is wrong with the bureau's values in force, in Chinese


_TOGETHER: list[TogetherRule] = []


def register_together(keys: Iterable[str], problems: Callable[[Bureau], list[str]]) -> None:
    _TOGETHER.append(TogetherRule(frozenset(keys), problems))


def _holders(bureau: Bureau, keys: frozenset[str]) -> list[Bureau]:
    """The bureaus below ``bureau`` with a value of their own of one of ``keys``: every other bureau below holds what
    ``bureau`` or one of these holds, so checking these checks the whole tree."""
    return list(db.session.execute(
        sa.select(Bureau).where(Bureau.id.in_(
            sa.select(BureauSetting.bureau_id).join(Bureau, Bureau.id == BureauSetting.bureau_id).where(
                BureauSetting.key.in_(sorted(keys)), Bureau.path.startswith(bureau.path, autoescape=True),
                Bureau.id != bureau.id)))
        .order_by(Bureau.path)).scalars())


def _together_before(bureau: Bureau, changing: Iterable[str]) -> dict[tuple[int, int], list[str]]:
    """What is already wrong below ``bureau`` before a change of ``changing`` (not the change's doing: a lower
    bureau's values that never held together do not stop the upper bureau's change)."""
    changing = set(changing)
    return {(i, b.id): rule.problems(b) for i, rule in enumerate(_TOGETHER) if rule.keys & changing
            for b in _holders(bureau, rule.keys)}


def _refuse_apart(bureau: Bureau, changed: Iterable[str], before: dict[tuple[int, int], list[str]]) -> None:
    """Refuse (422) a change of ``changed`` that leaves the values in force for ``bureau``, or for a lower bureau
    holding values of its own, unusable together."""
    changed = set(changed)
    for i, rule in enumerate(_TOGETHER):
        if not rule.keys & changed:
            continue
        fields = {key: "与相关设置不一致" for key in sorted(rule.keys & changed)}
        problems = rule.problems(bureau)
        if problems:
            raise ValidationFailed("设置之间不一致：" + "；".join(problems) + "。", fields)
        for lower in _holders(bureau, rule.keys):
            problems = rule.problems(lower)
            if problems and not before.get((i, lower.id)):
                raise ValidationFailed(
                    f"{lower.short_name}自行设置了其中部分值，按此修改后其设置之间不一致：" + "；".join(problems)
                    + f"。请先与{lower.short_name}协调（由其修改或恢复沿用上级）。", fields)


def save_settings(bureau: Bureau, values: dict[str, Any], actor: User) -> list[str]:
    """The settings page's save: each value given (blank: left as it is) that differs from the one in force is
    set; then the values that must hold together are checked as the change leaves them. Returns the keys set.
    By one who may change the bureau's settings (each value set checks it too)."""
    _require_may_change(bureau, actor)
    for key in values:
        _definition(key)
    _lock(bureau)
    current = {d.key: v for d, v, _own in effective_settings(bureau)}
    given = {key: raw for key, raw in values.items() if raw is not None and raw != ""}
    before = _together_before(bureau, given)
    changed = [key for key, raw in given.items() if str(SETTINGS[key].parse(raw)) != str(current[key])]
    for key in changed:
        set_setting(bureau, key, given[key], actor)
    _refuse_apart(bureau, changed, before)
    return changed


def clear_setting(bureau: Bureau, key: str, actor: User) -> Any:
    """恢复沿用上级: remove the bureau's own value of ``key``, so the upper bureaus' (for a narrower setting, in the
    end the general one's) applies to it and the bureaus below without their own again — and follows their later
    changes. Returns the value now in force. Refused (422) when the bureau has no value of its own (never set, or
    a second click), or when the value it would follow fails the rule a set value must meet. By one who may change
    the bureau's settings (the same permission as setting it), on every path."""
    _require_may_change(bureau, actor)
    definition = _definition(key)
    _lock(bureau)
    row = _own_row(bureau, key)
    if row is None:
        raise ValidationFailed(f"本局未单独设置“{definition.label}”（可能已恢复），现沿用上级或默认值，无需恢复。",
                               {key: "本局未单独设置"})
    old, now = row.value, inherited(bureau, key)
    try:
        _check(definition, now)
    except ValidationFailed as exc:
        raise ValidationFailed(f"不能恢复沿用上级：恢复后将适用 {definition.text(now)}，{exc.message}请直接修改本局的值。",
                               exc.fields) from exc
    before = _together_before(bureau, [key])
    db.session.delete(row)
    db.session.flush()
    _forget()
    _refuse_apart(bureau, [key], before)
    audit.record("setting.cleared", bureau, actor=actor, bureau_id=bureau.id,
                 summary=f"{bureau.short_name} 恢复设置“{definition.label}”沿用上级：{definition.text(old)} → "
                         f"{definition.text(now)}",
                 payload={"key": key, "old": old, "new": now})
    return now
