"""Credit rating forms (Flask-WTF): the year buttons (compute, publish, finalise), the firm's objection,
the bureau's answer, the working-day calendar and external credit records.

As elsewhere, a form checks only what a form can know (lengths, a date is a date); the rules (objection
period, text long enough, a source file is required, deduction range) live in ``evalhub.credit.services``,
which reports every problem in Chinese under the field names used here (``text``, ``answer``,
``decision``, ``note``, ``kind``, ``occurred_on``, ``description``, ``deduction``, ``file``).
"""
from __future__ import annotations

from flask_wtf.file import FileField, MultipleFileField
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.fields import DateField
from wtforms.validators import DataRequired, Length, Optional

from evalhub.credit.models import ExternalRecordKind, ObjectionDecision
from evalhub.registry.forms import BLANK, DATE_HELP, ChineseForm, choice, options


class YearActionForm(ChineseForm):
    """Compute, publish or finalise one year of the bureau's ratings (a CSRF-protected button)."""

    year = StringField("年度", validators=[DataRequired("请填写年度"), Length(max=4, message="年度应为 4 位数字")])


class ObjectionForm(ChineseForm):
    # Choices are the rating's own components and their records (set by the view); the service checks them.
    component = SelectField("异议针对的评分项", choices=[BLANK], validate_choice=False)
    records = SelectMultipleField("有异议的记录（可多选）", choices=[], validate_choice=False)
    text = TextAreaField("异议事实和理由", validators=[Length(max=5000, message="异议内容不能超过 5000 个字符")],
                         description="请写明对哪一项得分有异议、事实依据是什么（不少于 10 字）")
    evidence = MultipleFileField("证明材料（PDF、Word、文本或图片，可多选）")


class AnswerForm(ChineseForm):
    """One per objection on the rating page (prefixed ``a<objection id>``)."""

    decision = SelectField("处理结论", choices=[BLANK] + options(ObjectionDecision.choices()), validate_choice=False)
    answer = TextAreaField("答复意见", validators=[Length(max=5000, message="答复意见不能超过 5000 个字符")])
    recompute = BooleanField("重新计算（异议未指明记录时：按现有记录重新计算该机构本年度评价）")
    evidence = FileField("更正依据的证明材料（不上传则采用机构提交的证明材料）")


CALENDAR_KINDS = [choice("holiday", "休息日（节假日）"), choice("workday", "工作日（调休上班）")]


class CalendarForm(ChineseForm):
    day = DateField("日期", validators=[DataRequired("请选择日期")], description=DATE_HELP)
    kind = SelectField("设为", choices=CALENDAR_KINDS)
    note = StringField("说明", validators=[Length(max=100, message="说明不能超过 100 个字符")],
                       description="如：古尔邦节、国庆节调休")


class ExternalRecordForm(ChineseForm):
    firm_id = SelectField("第三方机构", choices=[BLANK], validate_choice=False)
    kind = SelectField("记录类型", choices=[BLANK] + options(ExternalRecordKind.choices()), validate_choice=False)
    occurred_on = DateField("发生日期", validators=[Optional()], description=DATE_HELP + "；计入该日期所在年度的评价")
    description = TextAreaField("记录内容", validators=[Length(max=2000, message="记录内容不能超过 2000 个字符")],
                                description="如：处罚决定书文号、处罚事由和结果")
    deduction = StringField("扣分", validators=[Length(max=12, message="扣分过长")], description="0–100，从外部信用分值中扣除")
    file = FileField("来源文件（处罚决定书、信用中国截图等）")
