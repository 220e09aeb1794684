from __future__ import annotations

from typing import Iterator

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.datastructures import FileStorage
from wtforms import Field, FieldList, FormField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.meta import DefaultMeta
from wtforms.utils import unset_value
from wtforms.validators import DataRequired, EqualTo, Length

from evalhub.core.inputs import control_error


def limited(label: str, max_len: int) -> Length:
    """A length limit whose message names the field. WTForms formats the message with ``%``, so a label's own
    ``%`` (“抽查比例（%）”) is escaped: unescaped, a too-long value was a 500."""
    return Length(max=max_len, message=f"{label.replace('%', '%%')}不能超过 {max_len} 个字符")


class RowList(FieldList):
    """A table of rows a page can grow ("增加一行"): more rows than ``max_entries`` are refused with a message
    naming the limit — WTForms' FieldList keeps the first ``max_entries`` and drops the rest without a word, so a
    firm's 62-line scoring table was stored as 60 lines."""

    posted = 0

    def process(self, formdata, data=unset_value, extra_filters=None):
        self.posted = len(set(self._extract_indices(self.name, formdata))) if formdata else 0
        super().process(formdata, data, extra_filters)

    def validate(self, form, extra_validators=()) -> bool:
        valid = super().validate(form, extra_validators)
        if self.max_entries and self.posted > self.max_entries:
            self.errors = list(self.errors) + [f"{self.label.text}最多 {self.max_entries} 行，提交了 {self.posted} 行，"
                                               "请合并或删去多余的行后再提交。"]
            return False
        return valid


def text_field(label: str, max_len: int, **kw) -> StringField:
    return StringField(label, validators=[limited(label, max_len)], **kw)


def area_field(label: str, max_len: int, **kw) -> TextAreaField:
    return TextAreaField(label, validators=[limited(label, max_len)], **kw)


class ChineseMeta:
    """WTForms' own messages ("不是有效的日期值。", a choice that cannot be read) in Chinese, whatever the
    browser's language."""

    locales = ("zh",)

    def get_translations(self, form):
        return DefaultMeta.get_translations(self, form)


class BaseForm(FlaskForm):
    """The base of every form (the domains' ``registry.forms.ChineseForm`` is this one): text that carries a
    control character — in any field (text, password, hidden, a select's value), nested forms and lists
    included, or in an uploaded file's name — is refused beside its field (``core.inputs``: refuse, never
    strip). Names are checked by the services that store them, for every path at once. WTForms' own messages
    are Chinese (``ChineseMeta``)."""

    class Meta(ChineseMeta):
        pass

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for field, text in _texts(self):
            message = control_error(text)
            if message:
                field.errors = [*field.errors, message]
                valid = False
        return valid


def _texts(fields) -> Iterator[tuple[Field, str]]:
    for field in fields:
        if isinstance(field, FormField):
            yield from _texts(field.form)
        elif isinstance(field, FieldList):
            yield from _texts(field.entries)
        else:
            data = field.data if isinstance(field.data, list) else [field.data]  # multiple choices, files
            for item in data:
                if isinstance(item, str):
                    yield field, item
                elif isinstance(item, FileStorage) and item.filename:
                    yield field, item.filename


class LoginForm(BaseForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired("请输入密码")])


class ActionForm(BaseForm):
    """A POST button with CSRF protection and an optional reason."""

    reason = TextAreaField("原因", validators=[Length(max=500, message="不能超过 500 个字符")])


class SettingClearForm(BaseForm):
    """恢复沿用上级 on the settings page: the setting's key comes from the row's button."""

    key = StringField("设置项", validators=[DataRequired("请选择要恢复沿用上级的设置项"), limited("设置项", 64)])


class PasswordChangeForm(BaseForm):
    current_password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])
    new_password = PasswordField("新密码", validators=[DataRequired("请输入新密码"), Length(max=128, message="不能超过 128 个字符")],
                                 description="修改后，其他浏览器上的登录将退出，所有 API 令牌将被撤销。")
    confirm = PasswordField("再次输入新密码", validators=[DataRequired("请再次输入新密码"),
                                                    EqualTo("new_password", message="两次输入的新密码不一致")])


class OrganisationImportForm(BaseForm):
    file = FileField("Excel 文件", validators=[FileRequired("请选择要导入的 Excel 文件")],
                     description="工作表“财政局”和/或“预算单位”，列名见导入模板；任何一行有问题则整份文件不导入")


# --- accounts (core/accounts.py) --------------------------------------------------------------------

class AccountCreateForm(BaseForm):
    """An administrator creates an account; the person sets the password through the activation link."""

    username = StringField("用户名", validators=[DataRequired("请填写用户名"), Length(max=64, message="不超过 64 位")],
                           description="登录用，英文字母、数字和 . _ - @")
    display_name = StringField("姓名", validators=[DataRequired("请填写姓名"), Length(max=64, message="不超过 64 个字")])
    role = SelectField("角色", choices=[], validate_choice=False)
    email = StringField("电子邮箱", validators=[Length(max=120, message="不超过 120 位")],
                        description="填写后激活链接同时发送到该邮箱（需配置邮件服务器）")
    phone = StringField("电话", validators=[Length(max=30, message="不超过 30 位")])


class RoleChangeForm(BaseForm):
    role = SelectField("新角色", choices=[], validate_choice=False)
    reason = TextAreaField("调整原因", validators=[DataRequired("请填写调整原因"), Length(max=500, message="不能超过 500 个字符")])


class TotpLoginForm(BaseForm):
    code = StringField("动态验证码", validators=[DataRequired("请输入验证码"), Length(max=10, message="验证码为 6 位数字")],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True})


class TotpConfirmForm(BaseForm):
    # The password again at the confirmation too: a begun enrolment left on screen is no way round the begin's.
    password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])
    code = StringField("验证器显示的 6 位数字", validators=[DataRequired("请输入验证码"), Length(max=10, message="验证码为 6 位数字")],
                       render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"})


class TotpBeginForm(BaseForm):
    # Binding an authenticator asks for the password again, as turning it off does (ASVS 3.7.1): a borrowed
    # session must not bind its own phone.
    password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])


class TotpDisableForm(BaseForm):
    password = PasswordField("当前密码", validators=[DataRequired("请输入当前密码")])


class ForgotPasswordForm(BaseForm):
    identifier = StringField("用户名或电子邮箱", validators=[DataRequired("请填写用户名或电子邮箱"), Length(max=200)])


class SetPasswordForm(BaseForm):
    new_password = PasswordField("新密码", validators=[DataRequired("请输入新密码"), Length(max=128, message="不能超过 128 个字符")])
    confirm = PasswordField("再次输入新密码", validators=[DataRequired("请再次输入新密码"),
                                                    EqualTo("new_password", message="两次输入的新密码不一致")])
