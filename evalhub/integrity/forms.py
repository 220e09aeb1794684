"""Integrity forms: the committee's decision on one consistency flag. The rules (a decision chosen, a
reason of at least 10 characters, once per flag) live in ``evalhub.integrity.services``."""
from __future__ import annotations

from wtforms import HiddenField, RadioField, TextAreaField
from wtforms.validators import Length

from evalhub.integrity.models import FlagDecision
from evalhub.registry.forms import ChineseForm, choice


class DecisionForm(ChineseForm):
    flag_id = HiddenField()
    decision = RadioField("处理决定", choices=[choice(v, label) for v, label in FlagDecision.choices()],
                          validate_choice=False)
    reason = TextAreaField("理由", validators=[Length(max=2000, message="理由不能超过 2000 个字符")],
                           description="写明核对了什么、为何作出该决定；继续评审的理由载入定标记录")
