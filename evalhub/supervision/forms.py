"""Supervision forms (Flask-WTF): the public complaint form, targeted cases, campaigns, the inspection's
checklist, findings, closing and the firm's response.

As elsewhere, a form checks only what a form can know (lengths, the shape of a number); the rules
(required fields, the ratio floor, the order of steps, rate limits) live in
``evalhub.supervision.services``, which reports every problem in Chinese under the field names used here
(``bureau_id``, ``firm_name``, ``text``, ``ratio``, ``year``, ``trigger``, ``firm_id``, ``detail``,
``complaint_id``, ``severity``, ``description``, ``measures``, ``conclusion``, ``checklist`` …), so
``core.web.apply_errors`` puts each message beside its field.
"""
from __future__ import annotations

import secrets

from wtforms import HiddenField, SelectField

from evalhub.core.errors import ValidationFailed
from evalhub.core.forms import area_field as _area, text_field as _text
from evalhub.registry.forms import BLANK, ChineseForm, MultiCheckboxField, choice, options
from evalhub.supervision.models import CHECKLIST, Measure, Severity, Trigger


TARGETED_TRIGGERS = [t for t in Trigger if t != Trigger.RANDOM]


# --- the public complaint form ---------------------------------------------------------------------

class ComplaintForm(ChineseForm):
    bureau_id = SelectField("受理的财政部门", validate_choice=False)
    firm_name = _text("被投诉的第三方机构名称", 120)
    engagement_reference = _text("评价任务编号（选填）", 40, description="如知道，请填写相关评价任务的编号")
    text = _area("投诉事项", 5000, description="请具体说明时间、事项和依据，不少于 20 字")
    complainant_name = _text("您的姓名（选填）", 50)
    complainant_contact = _text("联系方式（选填）", 100, description="仅财政部门可见，用于核实情况和反馈结果")
    # A fresh token each time the form is shown: the same form sent twice is one complaint (services).
    form_token = HiddenField(default=lambda: secrets.token_urlsafe(24))


# --- targeted cases and campaigns ------------------------------------------------------------------

class CaseForm(ChineseForm):
    trigger = SelectField("线索来源", choices=[BLANK] + options((t.value, t.label) for t in TARGETED_TRIGGERS),
                          validate_choice=False)
    firm_id = SelectField("被检查机构", validate_choice=False, description="填写了评价任务编号时可不选，默认为任务的承担机构")
    engagement_reference = _text("评价任务编号（选填）", 40)
    complaint_reference = _text("投诉编号（选填）", 30, description="线索来源为投诉举报时必填")
    detail = _area("线索内容", 5000)


class ComplaintCaseForm(ChineseForm):
    """立案检查 from a complaint: the trigger and the complaint are given."""

    firm_id = SelectField("被检查机构", validate_choice=False)
    engagement_reference = _text("评价任务编号（选填）", 40)
    detail = _area("线索内容", 5000)


class CampaignForm(ChineseForm):
    year = _text("年度", 4, description="从该年度已完成的评价任务中抽取")
    ratio = _text("抽查比例（%）", 3)


# --- inspection work -------------------------------------------------------------------------------

CHECK_CHOICES = [BLANK, choice("1", "符合"), choice("0", "不符合")]


class ChecklistForm(ChineseForm):
    """One result (符合 / 不符合) and one note per checklist item: ``ok_<key>`` and ``note_<key>``."""

    def items(self):
        return [(key, label, self[f"ok_{key}"], self[f"note_{key}"]) for key, label in CHECKLIST]

    def answers(self) -> dict[str, tuple[bool, str]]:
        """The items answered, as ``services.record_checklist`` takes them; a note without a result, a result
        that is not one of the choices, or nothing answered at all is refused beside the field."""
        answers, errors = {}, {}
        for key, label in CHECKLIST:
            value = (self[f"ok_{key}"].data or "").strip()
            note = self[f"note_{key}"].data or ""
            if value not in ("", "0", "1"):
                errors[f"ok_{key}"] = f"“{label}”的检查结果无效"
            elif value:
                answers[key] = (value == "1", note)
            elif note.strip():
                errors[f"ok_{key}"] = f"请选择“{label}”的检查结果"
        if not answers and not errors:
            errors["checklist"] = "请至少填写一项检查结果"
        ValidationFailed.raise_if(errors)
        return answers


for _key, _label in CHECKLIST:
    setattr(ChecklistForm, f"ok_{_key}", SelectField(_label, choices=CHECK_CHOICES, validate_choice=False))
    setattr(ChecklistForm, f"note_{_key}", _text(f"{_label}说明", 500))


class FindingForm(ChineseForm):
    severity = SelectField("严重程度", choices=[BLANK] + options(Severity.choices()), validate_choice=False)
    description = _area("问题描述", 5000)
    measures = MultiCheckboxField("处理措施", choices=options(Measure.choices()), validate_choice=False)


class CloseForm(ChineseForm):
    conclusion = _area("检查结论", 5000)
    substantiated = SelectField("投诉是否属实", choices=[choice("", "按是否发现问题认定"), choice("yes", "属实"),
                                                      choice("no", "不属实")], validate_choice=False)


class ResponseForm(ChineseForm):
    text = _area("整改情况", 5000, description="说明对每个问题的整改措施和结果，不少于 10 字")


# --- complaints: 不予立案, the complainant's lookup; inspectors named for a case (issue 14) ----------------

class DeclineForm(ChineseForm):
    reason = _area("不予立案理由", 2000, description="投诉人凭投诉编号和查询码可查询到该理由，请写明依据，不少于 10 字")


class LookupForm(ChineseForm):
    reference = _text("投诉编号", 30)
    code = _text("查询码", 16, description="提交投诉时与编号一同显示的 8 位查询码")


class InspectorForm(ChineseForm):
    user_id = SelectField("财政检查人员", validate_choice=False)
    expert_id = SelectField("检查专家", validate_choice=False)
    reason = _text("指定理由（选填）", 200)


class RecusalForm(ChineseForm):
    reason = _area("利害关系说明", 500, description="如：曾在该机构任职、与项目负责人系近亲属、参与过该评价任务")
