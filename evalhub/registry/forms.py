"""Registry forms (Flask-WTF).

The forms check only what a form can know (types, lengths, a file was chosen); the business rules
(credit code check character, identity numbers, duplicates, enumerations) live in the services, which
report every problem at once in Chinese, and the views show those messages beside the fields.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    Form,
    FormField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import DateField
from wtforms.validators import DataRequired, EqualTo, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from evalhub.core.enums import Field
from evalhub.core.forms import BaseForm, ChineseMeta, RowList, text_field as _text
from evalhub.core.listing import Filter, enum_filter, parse_int
from evalhub.registry.models import (
    CertificateKind,
    CounterpartType,
    Degree,
    Firm,
    FirmDocumentKind,
    FirmKind,
    HasFields,
    LegalForm,
    ProfessionalTitle,
    RelationKind,
    StaffRole,
    TieKind,
)

try:  # WTForms ≥ 3.3 wants SelectChoice objects; tuples are deprecated there and go in 3.4
    from wtforms.fields.choices import SelectChoice as _SelectChoice

    def choice(value, label: str):
        return _SelectChoice(value, label)
except ImportError:  # pragma: no cover - older WTForms
    def choice(value, label: str):
        return (value, label)


def options(pairs) -> list:
    """(value, label) pairs as select choices."""
    return [choice(v, label) for v, label in pairs]


BLANK = choice("", "— 请选择 —")
DATE_HELP = "格式：2020-01-31"


ChineseForm = BaseForm  # (every form's WTForms messages are Chinese: core.forms.ChineseMeta)


class ChineseSubForm(Form):
    class Meta(ChineseMeta):
        pass


def optional_int(value):
    """Coerce a select's value to an id; the blank option is None. Anything but an id in the database's range
    is a ValueError, which the select reports beside the field (an unbounded int was a driver error, a 500)."""
    if value in (None, "", "None"):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return parse_int(value)


class MultiCheckboxField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _choices(enum_cls, blank: bool = True) -> list:
    return ([BLANK] if blank else []) + options(enum_cls.choices())


def _date(label: str, **kw) -> DateField:
    return DateField(label, validators=[Optional()], description=kw.pop("description", DATE_HELP), **kw)


# --- firms -----------------------------------------------------------------------------------------

class FirmForm(ChineseForm):
    name = _text("机构名称", 120)
    uscc = _text("统一社会信用代码", 30, description="18 位，末位为 GB 32100 校验码")
    legal_form = SelectField("组织形式", choices=_choices(LegalForm), validate_choice=False)
    kind = SelectField("机构类型", choices=_choices(FirmKind), validate_choice=False)
    address = _text("住所地址", 200)
    legal_representative = _text("法定代表人（负责人）", 50)
    contact_name = _text("联系人", 50)
    contact_phone = _text("联系电话", 30)
    contact_email = _text("电子邮箱", 120)
    founded_on = _date("成立日期")
    fields = MultiCheckboxField("业务领域", choices=options(Field.choices()), validate_choice=False)
    description = TextAreaField("机构简介", validators=[Length(max=5000, message="机构简介不能超过 5000 个字符")])
    declares_no_major_violation = BooleanField("本机构承诺：近三年在绩效评价工作中无重大违法违规记录")

    firm_fields = ("name", "uscc", "legal_form", "kind", "address", "legal_representative", "contact_name",
                   "contact_phone", "contact_email", "founded_on", "fields", "description",
                   "declares_no_major_violation")


class FirmRegisterForm(FirmForm):
    bureau_id = SelectField("申请进入的机构库", coerce=optional_int, validate_choice=False,
                            validators=[DataRequired("请选择要申请进入的财政局机构库")])
    username = _text("登录用户名", 64)
    display_name = _text("用户显示名称", 64, description="不填则使用联系人姓名")
    password = PasswordField("登录密码", description="至少 8 位")
    password_confirm = PasswordField("确认密码", validators=[EqualTo("password", message="两次输入的密码不一致")])


class FirmStatusForm(ChineseForm):
    action = HiddenField("操作", validators=[DataRequired("缺少操作类型")])
    reason = TextAreaField("原因", validators=[Length(max=500, message="原因不能超过 500 个字符")])
    effective_until = _date("截止日期", description="暂停或列入黑名单的截止日期，可不填")


class FirmDocumentForm(ChineseForm):
    kind = SelectField("材料类型", choices=_choices(FirmDocumentKind), validate_choice=False)
    file = FileField("文件", validators=[FileRequired("请选择要上传的文件")],
                     description="营业执照接受 PDF 或图片；其他材料接受 PDF、Word (.docx)、文本或图片")


class CertificateEntry(ChineseSubForm):
    kind = SelectField("证书类型", choices=[choice("", "—")] + options(CertificateKind.choices()), validate_choice=False)
    number = StringField("证书编号", validators=[Length(max=50, message="证书编号不能超过 50 个字符")])


class StaffForm(ChineseForm):
    name = _text("姓名", 50)
    id_number = _text("身份证号码", 30, description="仅用于核验与回避查重，加密保存，页面只显示掩码")
    role = SelectField("岗位", choices=_choices(StaffRole), validate_choice=False)
    years_experience = _text("从业年限（年）", 3)
    title = _text("职称", 50)
    phone = _text("联系电话", 30)
    certificates = RowList(FormField(CertificateEntry), label="执业证书", min_entries=3, max_entries=3)


class ReasonForm(ChineseForm):
    reason = TextAreaField("原因", validators=[Length(max=500, message="原因不能超过 500 个字符")])


class FirmUserForm(ChineseForm):
    """A firm administrator adds an account of the firm (it is activated through a one-time link)."""

    username = StringField("用户名", validators=[Length(max=64, message="用户名不能超过 64 位")],
                           description="英文字母、数字和 . _ - @")
    display_name = StringField("姓名", validators=[Length(max=64, message="姓名不能超过 64 个字")])
    email = StringField("电子邮箱", validators=[Length(max=120, message="电子邮箱不能超过 120 个字符")],
                        description="填写后激活链接将发送到该邮箱（已配置邮件服务时）")
    phone = StringField("联系电话", validators=[Length(max=30, message="联系电话不能超过 30 个字符")])
    firm_admin = BooleanField("设为本机构管理员（可添加和移除本机构账户）")


class RelationForm(ChineseForm):
    kind = SelectField("关系类型", choices=_choices(RelationKind), validate_choice=False)
    bureau_id = SelectField("关联财政局", coerce=optional_int, validate_choice=False)
    budget_unit_id = SelectField("关联预算单位", coerce=optional_int, validate_choice=False)
    start_date = _date("开始日期")
    end_date = _date("结束日期", description="关系仍存续则不填")
    note = TextAreaField("说明", validators=[Length(max=300, message="说明不能超过 300 个字符")])


class EndRelationForm(ChineseForm):
    end_date = DateField("结束日期", validators=[DataRequired("请填写结束日期")])
    reason = StringField("结束原因", validators=[Length(max=300, message="结束原因不能超过 300 个字符")])


# --- experts ---------------------------------------------------------------------------------------

class ExpertForm(ChineseForm):
    name = _text("姓名", 50)
    id_number = _text("身份证号码", 30, description="加密保存，页面只显示掩码")
    employer = _text("工作单位", 120)
    title = SelectField("职称", choices=_choices(ProfessionalTitle), validate_choice=False)
    degree = SelectField("学历", choices=_choices(Degree), validate_choice=False)
    years_in_field = _text("从业年限（年）", 3)
    birth_year = _text("出生年份", 4)
    fields = MultiCheckboxField("业务领域", choices=options(Field.choices()), validate_choice=False)
    phone = _text("联系电话", 30)
    email = _text("电子邮箱", 120)


class ExpertStatusForm(ChineseForm):
    action = HiddenField("操作", validators=[DataRequired("缺少操作类型")])
    reason = TextAreaField("原因", validators=[Length(max=500, message="原因不能超过 500 个字符")])


class AvailabilityForm(ChineseForm):
    available = RadioField("可用状态", choices=options([("1", "可参加评审"), ("0", "暂不可用")]), default="1",
                           validators=[DataRequired("请选择可用状态")])
    until = _date("暂不可用截止日期", description="不填表示直到另行声明")
    note = _text("说明", 200)


class TieForm(ChineseForm):
    kind = SelectField("关系类型", choices=_choices(TieKind), validate_choice=False)
    counterpart_type = SelectField("关联方类型", choices=_choices(CounterpartType), validate_choice=False)
    firm_id = SelectField("关联第三方机构", coerce=optional_int, validate_choice=False)
    bureau_id = SelectField("关联财政局", coerce=optional_int, validate_choice=False)
    budget_unit_id = SelectField("关联预算单位", coerce=optional_int, validate_choice=False)
    counterpart_name = _text("关联单位名称", 120, description="关联方类型为“其他单位”时填写")
    start_date = _date("开始日期")
    end_date = _date("结束日期", description="关系仍存续则不填")
    note = TextAreaField("说明", validators=[Length(max=300, message="说明不能超过 300 个字符")])


# --- imports ---------------------------------------------------------------------------------------

class ImportForm(ChineseForm):
    file = FileField("Excel 文件（.xlsx）", validators=[FileRequired("请选择要上传的 Excel 文件")])



# --- list filters (the query string of list pages and API lists; see evalhub.core.listing) --------------

def field_filter(model: type[HasFields]) -> Filter:
    """``?field=``: firms or experts working in a business field."""
    return enum_filter("field", Field, lambda stmt, field: stmt.where(model.with_field(field)))


def firm_name_filter(firm_id: Any, name: str = "firm") -> Filter:
    """``?firm=``: rows whose firm's name contains the text (``firm_id``: the rows' firm column)."""
    return Filter(name, str, lambda stmt, text: stmt.where(firm_id.in_(
        sa.select(Firm.id).where(Firm.name.icontains(text, autoescape=True)))))
