from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length


class LoginForm(FlaskForm):
    username = StringField("用户名", validators=[DataRequired("请输入用户名"), Length(max=64)])
    password = PasswordField("密码", validators=[DataRequired("请输入密码")])


class ActionForm(FlaskForm):
    """A POST button with CSRF protection and an optional reason."""

    reason = TextAreaField("原因", validators=[Length(max=500, message="不能超过 500 个字符")])
