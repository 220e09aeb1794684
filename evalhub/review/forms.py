"""Review forms (Flask-WTF): submissions with the report's scoring table, panels, invitations, reviews,
letters, results, the commissioner's rating, publication and rubrics.

As elsewhere, a form checks only what a form can know (a file was chosen, lengths, a row with numbers
has a name); the rules (file types, numbers, score ranges, sums, states) live in
``evalhub.review.services``, which reports every problem in Chinese under the field names used here
(``score_<item id>``, ``comment_<item id>``, ``opinion``, ``letter``, ``reason``, ``file`` …), so
``core.web.apply_errors`` puts each message beside its field.

The review form and the commissioner's rating are generated from the rubric version in use
(``review_form_for`` / ``rating_form_for``): one points field and one comment field per rubric item.
"""
from __future__ import annotations

from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, FormField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from evalhub.core.forms import RowList, area_field as _area, text_field as _text
from evalhub.registry.forms import BLANK, ChineseForm, ChineseSubForm, choice, options
from evalhub.review.models import Grade, IndicatorCategory, Rubric
from evalhub.review.services import CAPS, MAX_INDICATOR_ROWS  # the service's limit: the form's table stops there

INDICATOR_ROWS = 12      # the scoring table shows at least this many rows; blank rows are ignored
RUBRIC_ROWS = 8


# --- submissions -----------------------------------------------------------------------------------

class IndicatorRow(ChineseSubForm):
    category = SelectField("类别", choices=[BLANK] + options(IndicatorCategory.choices()), validate_choice=False)
    name = StringField("指标名称", validators=[Length(max=200, message="指标名称不能超过 200 个字符")])
    weight = StringField("权重（分值）", validators=[Length(max=12, message="权重过长")])
    score = StringField("得分", validators=[Length(max=12, message="得分过长")])


class SubmissionForm(ChineseForm):
    file = FileField("文件（Word .docx 或 PDF）", validators=[FileRequired("请选择要上传的文件")])
    note = _area("提交说明", 2000, description="例如：本版针对上一轮评审意见作了哪些修改")


class ReportSubmissionForm(SubmissionForm):
    indicators = RowList(FormField(IndicatorRow), label="评价指标评分表", min_entries=INDICATOR_ROWS,
                           max_entries=MAX_INDICATOR_ROWS)
    concluded_total = _text("报告结论总分", 12, description="0–100，应等于各指标得分之和")
    concluded_grade = SelectField("报告结论等级", choices=[BLANK] + options(Grade.choices()), validate_choice=False)

    def validate(self, extra_validators=None) -> bool:
        ok = super().validate(extra_validators)
        for number, row in enumerate(self.indicators, start=1):
            has_numbers = (row.form.weight.data or "").strip() or (row.form.score.data or "").strip()
            if has_numbers and not (row.form.name.data or "").strip():
                row.form.name.errors = list(row.form.name.errors) + [f"第 {number} 行填写了分值，请填写指标名称"]
                ok = False
        return ok


# --- panels and letters ----------------------------------------------------------------------------

class PanelForm(ChineseForm):
    size = _text("评审专家人数", 3, description="单数，不少于 3 人；不填则按本局设置")
    offline = BooleanField("线下评审（专家不在系统中评审，由工作人员代为登记答复、录入评分）",
                           description="在线评审只抽取已开通并激活账号的专家；选择线下评审时，未开通账号的专家也可被抽取。")


class LetterForm(ChineseForm):
    letter = _area("整改意见", 20000)


class ReopenForm(ChineseForm):
    review_id = HiddenField("评审意见")
    reason = _area("退回原因", 500)


# --- invitations and reviews -----------------------------------------------------------------------

class AcceptForm(ChineseForm):
    declaration = BooleanField("本人已阅读并签署上述无利益冲突声明")


class DeclineForm(ChineseForm):
    reason = _area("拒绝原因", 500)


class OfflineAnswerForm(ChineseForm):
    """线下评审: staff record the expert's answer received off-line (``action`` accept / decline)."""

    action = HiddenField()
    declaration = BooleanField("已收到专家本人签署的纸质无利益冲突声明")
    reason = _area("拒绝原因", 500)


class ReviewForm(ChineseForm):
    opinion = _area("总体评审意见", 10000)
    action = HiddenField()


def _scored(base: type, rubric: Rubric, score_label: str, too_long: str, *, comments: bool = False) -> type:
    """``base`` with a points field per rubric item (``score_<item id>``) and, with ``comments``, a reason
    per item (``comment_<item id>``): the rubric is versioned, so the fields are made for the version used."""

    class _Form(base):
        pass

    for item in rubric.items:
        setattr(_Form, f"score_{item.id}", StringField(f"{item.name}{score_label}（满分 {item.max_points.normalize():f}）",
                                                       validators=[Length(max=12, message=too_long)]))
        if comments:
            setattr(_Form, f"comment_{item.id}", TextAreaField(
                f"{item.name}评分理由", validators=[Length(max=5000, message="评分理由过长")]))
    return _Form


def review_form_for(rubric: Rubric, **kw) -> ReviewForm:
    """The review form of one rubric version: points and a comment per item, then the overall opinion."""
    return _scored(ReviewForm, rubric, "得分", "得分过长", comments=True)(**kw)


# --- after acceptance ------------------------------------------------------------------------------

class CapForm(ChineseForm):
    """One cap with its evidence: a document and/or a link to the record that found the problem."""
    code = SelectField("等级限制情形", choices=[BLANK] + [choice(k, v[0]) for k, v in CAPS.items()], validate_choice=False)
    reason = _area("理由（发现的问题、来源）", 1000)
    link = _text("依据记录链接（如本系统内的检查、审计记录地址）", 300)
    file = FileField("依据文件（PDF、Word、Excel 或图片）")


class LiftCapForm(ChineseForm):
    cap_id = HiddenField()
    reason = _area("撤销理由", 1000)


class WithdrawForm(ChineseForm):
    invitation_id = HiddenField()
    reason = _area("撤回原因", 300)


class RatingForm(ChineseForm):
    comment = _area("总体评价", 2000)


def rating_form_for(rubric: Rubric, **kw) -> RatingForm:
    """The commissioner's rating of the firm: points per item of the bureau's commissioner rubric."""
    return _scored(RatingForm, rubric, "", "分值过长")(**kw)


class DeductionForm(ChineseForm):
    deduction = _text("扣分", 12, description="0–100")
    reason = TextAreaField("扣分验收理由", validators=[DataRequired("请说明扣分验收的理由"),
                                                    Length(max=1000, message="理由不能超过 1000 个字符")])


class PublishForm(ChineseForm):
    file = FileField("脱密后的报告（Word .docx 或 PDF）", validators=[FileRequired("请上传脱密后的报告文件")])
    # Only shown to an admin while something waivable blocks publication (an open inspection); the state
    # machine decides whether the reason may waive it and records it.
    override = _area("豁免理由（管理员：检查尚未办结、或记录的等级好于报告结论而确须公开时填写）", 500)


class ClassifyForm(ChineseForm):
    reason = _area("不予公开的理由", 500)
    # shown while the recorded grade is better than the report's conclusion with no cap (grade_within_conclusion)
    override = _area("豁免理由（记录的等级好于报告结论、不记录等级限制而确须归档时填写）", 500)


# --- rubrics ---------------------------------------------------------------------------------------

class RubricRow(ChineseSubForm):
    name = StringField("评分项", validators=[Length(max=100, message="评分项名称不能超过 100 个字符")])
    description = TextAreaField("评分要点", validators=[Length(max=2000, message="评分要点不能超过 2000 个字符")])
    max_points = StringField("分值", validators=[Length(max=10, message="分值过长")])


class RubricForm(ChineseForm):
    title = _text("评审表名称", 100)
    items = RowList(FormField(RubricRow), label="评分项（合计 100 分）", min_entries=RUBRIC_ROWS, max_entries=30)



class ConfirmForm(ChineseForm):
    """A CSRF-protected button (mark read …)."""
