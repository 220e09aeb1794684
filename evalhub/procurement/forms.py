"""Procurement forms (Flask-WTF): plans and their items, procurement, bids, committee, scores, award, contract.

As in the registry, a form checks only what a form can know (types, lengths, that a file was chosen);
the business rules (主体分离, price weights, ceilings, committee sizes, contract dates …) live in
``evalhub.procurement.services``, which report every problem in Chinese under the same field names
used here, so ``core.web.apply_errors`` puts each message beside its field.

Money is entered in 万元 (``*_wan``); the deadline is entered as Beijing local time.
"""
from __future__ import annotations

from flask_wtf.file import FileAllowed, FileField, FileRequired, MultipleFileField
from wtforms import FormField, HiddenField, RadioField, SelectField, StringField, TextAreaField
from wtforms.fields import DateField, DateTimeLocalField
from wtforms.validators import DataRequired, Length, Optional

from evalhub.core.enums import Field
from evalhub.core.forms import RowList, area_field as _area, text_field as _text
from evalhub.core.timeutil import BEIJING
from evalhub.procurement.models import (
    BudgetKind, ChallengeRemedy, DesignatedMedium, ObjectType, ProcurementMethod, ServiceKind, WithheldContent,
)
from evalhub.registry.forms import (
    BLANK,
    ChineseForm,
    ChineseSubForm,
    MultiCheckboxField,
    choice,
    optional_int,
    options,
)

DEADLINE_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]


def _choices(enum_cls, blank: bool = True) -> list:
    return ([BLANK] if blank else []) + options(enum_cls.choices())


def _date(label: str, **kw) -> DateField:
    return DateField(label, validators=[Optional()], **kw)


# --- plans -----------------------------------------------------------------------------------------

class PlanNewForm(ChineseForm):
    year = StringField("年度", validators=[DataRequired("请填写年度"), Length(max=4, message="年度为 4 位数字")],
                       description="例如 2025")


class PlanItemForm(ChineseForm):
    name = _text("评价对象名称", 200)
    object_type = SelectField("评价类型", choices=_choices(ObjectType), validate_choice=False)
    budget_kind = SelectField("预算类别", choices=_choices(BudgetKind), validate_choice=False)
    field = SelectField("业务领域", choices=_choices(Field), validate_choice=False)
    service_kind = SelectField("委托事项", choices=_choices(ServiceKind, blank=False), validate_choice=False,
                               default=ServiceKind.KEY_EVALUATION.value)
    amount_wan = _text("金额（万元）", 20, description="以万元为单位，例如 1,234.56")
    budget_unit_id = SelectField("被评价单位", validate_choice=False)
    commissioner_unit_id = SelectField("委托方", validate_choice=False,
                                       description="委托方不得与被评价单位相同（主体分离）")
    reason = _area("选取理由", 2000)


class PlanApproveForm(ChineseForm):
    warnings_reason = _area("仍予批准的理由（计划存在提示事项时必填，将显示在计划和导出表中）", 2000)


class ImportForm(ChineseForm):
    file = FileField("Excel 文件（.xlsx）", validators=[FileRequired("请选择要上传的 Excel 文件")])


# --- engagements -----------------------------------------------------------------------------------

class TransitionForm(ChineseForm):
    action = HiddenField("操作", validators=[DataRequired("缺少操作类型")])
    note = _area("说明", 1000)


class SpendingForm(ChineseForm):
    spent_wan = StringField("实际支出（万元）", validators=[DataRequired("请填写实际支出（万元）"),
                                                     Length(max=20, message="金额过长")])


# --- procurement -----------------------------------------------------------------------------------

class RubricRow(ChineseSubForm):
    name = StringField("评分项", validators=[Length(max=100, message="评分项名称不能超过 100 个字符")])
    points = StringField("分值", validators=[Length(max=10, message="分值过长")])


class ProcurementForm(ChineseForm):
    method = SelectField("采购方式", choices=_choices(ProcurementMethod, blank=False), validate_choice=False,
                         default=ProcurementMethod.COMPETITIVE_CONSULTATION.value)
    title = _text("项目名称", 200, description="不填则为“评价对象名称 + 绩效评价服务”")
    description = _area("采购需求", 5000)
    ceiling_price_wan = _text("最高限价（万元）", 20)
    price_weight = _text("价格分权重（%）", 10, default="20",
                         description="服务类不低于 10%；竞争性磋商 10%–30%")
    bid_deadline = DateTimeLocalField("投标截止时间（北京时间）", validators=[Optional()], format=DEADLINE_FORMATS,
                                      tz=BEIJING)
    rubric = RowList(FormField(RubricRow), label="技术评分项（合计 100 分）", min_entries=8, max_entries=15)
    framework_agreement_id = SelectField("框架协议", validate_choice=False)
    single_source_firm_id = SelectField("单一来源供应商", validate_choice=False)
    justification = _area("单一来源理由", 2000, description="须书面说明只能从该供应商采购的理由（不少于 20 字）")
    rerun_reason = _area("重新采购原因", 500, description="上一轮采购失败（流标）后重新采购或改变采购方式，须说明原因")


class SingleSourceApprovalForm(ChineseForm):
    price_wan = _text("成交价格（万元）", 20)


class OpenBidsForm(ChineseForm):
    """开标: a CSRF-protected button."""


class DeadlineForm(ChineseForm):
    """变更投标截止时间: before the deadline, or after it while the period counted from the 采购公告's posting on the
    designated media is short (``services.change_deadline``)."""
    bid_deadline = DateTimeLocalField("新的投标截止时间（北京时间）", validators=[Optional()], format=DEADLINE_FORMATS,
                                      tz=BEIJING)
    reason = _area("变更原因", 500, description="记入操作日志")


class AmendmentForm(ChineseForm):
    """澄清/更正公告 (procurement/amendments.py): the text, whether it may affect how bids are prepared (yes unless the
    bureau says no), a new deadline when one is needed or wanted, an optional file. The rules are the service's."""

    text = _area("澄清或者修改的内容", 5000, description="为采购文件的组成部分，书面通知全部潜在供应商并公开")
    affects_bids = RadioField("是否可能影响投标（响应）文件编制", default="yes", validators=[Optional()],
                              choices=options([("yes", "可能影响（截止时间前须留足法定期限，不足的须顺延截止时间）"),
                                               ("no", "不影响（如更正文字错误）")]))
    bid_deadline = DateTimeLocalField("新的投标截止时间（北京时间，不变更的留空）", validators=[Optional()],
                                      format=DEADLINE_FORMATS, tz=BEIJING)
    file = FileField("附件（Word .docx 或 PDF，可选）", description="如修改后的采购文件；系统去除文档属性中的作者等信息后公开")


class FailForm(ChineseForm):
    reason = _area("流标原因", 500)


class JustificationDecisionForm(ChineseForm):
    decision = RadioField("认定结果", choices=options([("accept", "说明合理"), ("reject", "说明不合理，按无效投标处理")]),
                          validators=[DataRequired("请选择认定结果")])
    note = _area("认定意见", 500)


class DrawCommitteeForm(ChineseForm):
    size = StringField("评审委员会人数", validators=[DataRequired("请填写人数"), Length(max=3, message="人数过大")],
                       description="不少于 3 人的单数（公开招标不少于 5 人）")


class _MemberNames:
    names: TextAreaField

    def members(self) -> list[str]:
        """The members typed in: one a line, or separated by commas or 、 (blank ones left for the service to refuse)."""
        text = self.names.data or ""
        return [n.strip() for n in text.replace("，", "\n").replace(",", "\n").replace("、", "\n").splitlines()]


class EnterCommitteeForm(_MemberNames, ChineseForm):
    names = _area("评审委员会成员", 2000, description="每行一人；适用于在政府采购平台抽取的评审专家")


class MakeUpCommitteeForm(_MemberNames, ChineseForm):
    names = _area("补充评委", 2000, description="每行一人，人数与所缺人数相同（录入的评审委员会适用；抽取的评审委员会从专家库补抽）")


class ReformCommitteeForm(ChineseForm):
    reason = _area("重新组建原因", 500, description="无法及时补足时，原评审委员会及其评分作废，重新抽取或录入评审委员会")


class ScoreForm(ChineseForm):
    """The score inputs are ``score_<bid id>_<rubric item id>``, read by the view; the form carries CSRF."""


class AwardForm(ChineseForm):
    reasons = _area("定标理由", 2000)


class ContractForm(ChineseForm):
    amount_wan = _text("合同金额（万元）", 20)
    signed_on = _date("签订日期")
    start_date = _date("服务开始日期")
    end_date = _date("服务结束日期")
    plan_due = _date("实施方案提交期限")
    report_due = _date("评价报告提交期限")
    deliverables = _area("交付成果", 2000, default="实施方案、评价报告、工作底稿")
    late_reason = _area("逾期签订原因（签订日期晚于法定期限时填写）", 500)


class ContractNoticeForm(ChineseForm):
    """合同公告 (政府采购法实施条例 第五十条). The file is not required here: the service says what is missing with
    everything else that is (one answer naming every field)."""

    services = _area("主要服务内容", 2000, description="按合同约定的服务内容公告；删去涉及国家秘密、商业秘密的内容时，须在下方说明")
    file = FileField("公开的合同文本（Word .docx 或 PDF）",
                     description="已删去涉及国家秘密、商业秘密的内容的合同文本；系统另去除文档属性中的作者等信息后公开")
    withheld = SelectField("不予公开的内容涉及", choices=[choice("", "不涉及（按合同约定全部公开）")] + options(WithheldContent.choices()),
                           validate_choice=False)
    withheld_reason = _area("不予公开的内容及理由（删去内容时填写）", 500)
    late_reason = _area("逾期公告原因（晚于法定期限发布时填写）", 500)


class MediaPostingForm(ChineseForm):
    """A notice's posting on the designated media (procurement/media.py). The date is text (an ``<input type=date>``):
    the service reads it and says in Chinese what is wrong, with every other problem at once."""

    medium = SelectField("指定媒体", choices=[BLANK] + options(DesignatedMedium.choices()), validate_choice=False)
    medium_name = _text("媒体名称（选择其他指定媒体时填写）", 100)
    url = _text("公告网址", 500, description="该公告在指定媒体上的网页地址，以 http:// 或 https:// 开头（不是本系统公开页面的地址）")
    posted_on = _text("在指定媒体发布的日期", 10, render_kw={"type": "date"})
    note = _area("备注（超过法定期限发布的，须说明逾期原因）", 500)
    correction_reason = _area("更正原因（更正已登记的记录时填写）", 500)


# --- framework agreements ---------------------------------------------------------------------------

class FrameworkForm(ChineseForm):
    """框架协议. The shortlist's order inputs are ``position_<firm id>`` (blank = not shortlisted), one per
    admitted firm the bureau may use, read by the view; the service checks the rest."""

    name = _text("框架协议名称", 200)
    valid_from = _date("有效期开始")
    valid_until = _date("有效期截止")


# --- bids ------------------------------------------------------------------------------------------

class BidForm(ChineseForm):
    price_wan = _text("投标报价（万元）", 20)
    team_staff_ids = MultiCheckboxField("项目团队", coerce=optional_int, validate_choice=False)
    lead_staff_id = SelectField("项目负责人", coerce=optional_int, validate_choice=False)
    technical_file = FileField("技术方案（.docx 或 .pdf）", validators=[
        FileAllowed(["docx", "pdf"], "技术方案只接受 Word (.docx) 或 PDF 文件")],
        description="修改投标时不上传则沿用已提交的技术方案")


class WithdrawForm(ChineseForm):
    """撤回投标: a CSRF-protected button."""


class ExplanationForm(ChineseForm):
    explanation = _area("报价合理性说明", 5000, description="请书面说明报价构成及其合理性（不少于 10 字）")


__all__ = [name for name in dir() if name.endswith("Form")] + ["choice", "BLANK"]


# --- challenges (质疑) ------------------------------------------------------------------------------

class ChallengeForm(ChineseForm):
    grounds = _area("质疑事项、事实依据和请求", 5000, description="请一次性写明全部质疑事项（不少于 10 字）")
    evidence = MultipleFileField("证明材料（PDF、Word、文本或图片，可多选）")


class ChallengeAnswerForm(ChineseForm):
    """One per open challenge on the procurement page (prefixed ``c<challenge id>``)."""

    outcome = SelectField("答复结论", choices=[BLANK] + options([("dismissed", "驳回"), ("upheld", "成立")]),
                          validate_choice=False)
    remedy = SelectField("质疑成立时的处理", choices=_choices(ChallengeRemedy), validate_choice=False)
    answer = _area("答复意见", 5000)
