"""Forms of the results loop. A form checks lengths and types only; the rules (who, when, a reason when the
decision departs from the proposal) live in ``evalhub.results.services``, which names the fields used here."""
from __future__ import annotations

from flask_wtf.file import FileField, MultipleFileField
from wtforms import SelectField, StringField
from wtforms.fields import DateField
from wtforms.validators import DataRequired, Length, Optional

from evalhub.core.forms import AccountCreateForm, area_field as _area
from evalhub.registry.forms import BLANK, DATE_HELP, ChineseForm, MultiCheckboxField, optional_int, options
from evalhub.results.models import FindingKind, Measure, Verification
from evalhub.review.models import IndicatorCategory


class FindingForm(ChineseForm):
    kind = SelectField("类型", choices=options(FindingKind.choices()))
    text = _area("内容", 2000)
    category = SelectField("指标类别", choices=[BLANK] + options(IndicatorCategory.choices()), validate_choice=False)
    indicator = StringField("相关指标", validators=[Length(max=200, message="相关指标不能超过 200 个字")])
    responsible_unit_id = SelectField("责任单位", coerce=optional_int, validate_choice=False,
                                      description="默认为被评价单位")
    deadline = DateField("整改期限", validators=[Optional()], description=f"留空则按本局设置的整改期限；{DATE_HELP}")


class PlanForm(ChineseForm):
    plan = _area("整改计划", 5000, description="整改措施、责任人和完成时间")


class EvidenceForm(ChineseForm):
    note = _area("整改情况说明", 5000)
    files = MultipleFileField("佐证材料（PDF、Word、Excel、文本或图片，可多选）")


class VerifyForm(ChineseForm):
    verification = SelectField("核验结论", choices=[BLANK] + options(Verification.choices()), validate_choice=False)
    note = _area("核验意见", 5000, description="部分整改或未整改时必填")
    deadline = DateField("新的整改期限", validators=[Optional()], description=f"退回继续整改时可重新确定（留空则沿用原期限，待核验期间不计入逾期）；{DATE_HELP}")


class EntryForm(ChineseForm):
    measures = MultiCheckboxField("应用方式", choices=options(Measure.choices()), validate_choice=False)
    cut_percent = StringField("调减比例（%）", validators=[Length(max=10, message="调减比例过长")])
    cut_amount_wan = StringField("或调减金额（万元）", validators=[Length(max=20, message="调减金额过长")])
    reason = _area("理由（与规则建议不一致时必填）", 5000)


class YearForm(ChineseForm):
    year = StringField("年度", validators=[DataRequired("请填写年度"), Length(max=4, message="年度应为 4 位数字")])


class SignedReportForm(ChineseForm):
    file = FileField("已签章的整改报告（PDF、Word 或图片）")


class UnitAccountForm(AccountCreateForm):
    """The account machinery's form, without a role to choose: a unit's account is a budget-unit user."""

    role = None


class UnitPublicationForm(ChineseForm):
    url = StringField("公开网址", validators=[Length(max=300, message="公开网址不能超过 300 个字符")],
                      description="本单位门户网站上公开脱密评价报告的网页地址")
    published_on = DateField("公开日期", validators=[Optional()], description=DATE_HELP)


class DraftForm(ChineseForm):
    file = FileField("评价报告初稿（Word 或 PDF）")


class FactAnswerForm(ChineseForm):
    agreed = SelectField("意见", choices=[BLANK, *options([("yes", "无异议"), ("no", "有异议")])], validate_choice=False)
    text = _area("异议内容（有异议时逐条填写）", 5000)


class FactResponseForm(ChineseForm):
    text = _area("对异议的回应", 5000)


class SelfEvaluationForm(ChineseForm):
    """A 主管部门's self-evaluation report of a central transfer (克州 item 7)."""

    unit_id = SelectField("自评单位", coerce=optional_int, validate_choice=False)
    year = StringField("年度", validators=[Length(max=4, message="年度应为 4 位数字")])
    name = StringField("项目（资金）名称", validators=[Length(max=200, message="名称不能超过 200 个字")],
                       description="如：中央财政统计能力建设补助资金")
    funds = StringField("资金金额（元）", validators=[Length(max=20, message="金额过长")])
    file = FileField("自评报告（Word 或 PDF）")
    note = _area("说明", 1000)


class ResubmitForm(ChineseForm):
    file = FileField("整改后的自评报告（Word 或 PDF）")
    note = _area("整改说明", 1000)


class PanelSizeForm(ChineseForm):
    size = StringField("评审专家人数", validators=[Length(max=2, message="人数过长")], description="留空按本局设置")


class MaterialListForm(ChineseForm):
    """Up to five lines of the 资料清单 at a time (blank lines are skipped)."""

    title_1 = StringField("资料名称", validators=[Length(max=200, message="资料名称不能超过 200 个字")])
    due_1 = DateField("提供期限", validators=[Optional()], description=DATE_HELP)
    note_1 = StringField("说明", validators=[Length(max=1000, message="说明不能超过 1000 个字")])
    title_2 = StringField("资料名称", validators=[Length(max=200, message="资料名称不能超过 200 个字")])
    due_2 = DateField("提供期限", validators=[Optional()], description=DATE_HELP)
    note_2 = StringField("说明", validators=[Length(max=1000, message="说明不能超过 1000 个字")])
    title_3 = StringField("资料名称", validators=[Length(max=200, message="资料名称不能超过 200 个字")])
    due_3 = DateField("提供期限", validators=[Optional()], description=DATE_HELP)
    note_3 = StringField("说明", validators=[Length(max=1000, message="说明不能超过 1000 个字")])

    def items(self) -> list[tuple]:
        return [(getattr(self, f"title_{n}").data, getattr(self, f"due_{n}").data, getattr(self, f"note_{n}").data)
                for n in (1, 2, 3)]


class MaterialUploadForm(ChineseForm):
    file = FileField("资料文件")
    note = StringField("说明", validators=[Length(max=1000, message="说明不能超过 1000 个字")])
