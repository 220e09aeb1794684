"""Report screening forms (Flask-WTF): the buttons of the screening pages, each a CSRF-protected POST.

The rules (who may open a case from a flag, train or promote a model; a flag opens one case only; a model
this installation cannot load is refused) live in ``evalhub.screening.services``.
"""
from __future__ import annotations

from flask_wtf.file import FileField, FileRequired

from evalhub.core.listing import Filter, enum_filter, int_filter, year_filter
from evalhub.registry.forms import ChineseForm
from evalhub.review.models import SubmissionKind


class OpenCaseForm(ChineseForm):
    """立案检查 from a flag card: the flag (risk, rank, reasons) is recorded as the case's trigger."""


class TrainForm(ChineseForm):
    """Train a new candidate model on evalhub's labels (a background job)."""


class PromoteForm(ChineseForm):
    """Make a candidate the active model and re-score the stored reports."""


def firm_text(text: str) -> str:
    """Text to look for in firms' names (the longest name is 120 characters; more is no name's part)."""
    if len(text) > 100:
        raise ValueError(text)
    return text


# The queue's query string (``/screening/queue`` and ``GET /api/v1/screening/queue``). The queue is ranked
# by ``services.queue``, so the filters are only read, never applied to a statement here. ``firm``: text in
# the firm's name (the page's filter, which suggests names as the user types); ``firm_id``: one firm (links, API).
QUEUE_FILTERS = (year_filter(), int_filter("bureau_id"), int_filter("firm_id"), enum_filter("kind", SubmissionKind),
                 Filter("firm", firm_text, hint="机构名称中的文字，不超过 100 字"))


class ReferenceImportForm(ChineseForm):
    """Import outside published reports (外部公开报告) to compare uploads against."""

    archive = FileField("报告文件或压缩包", validators=[FileRequired("请选择报告文件（.docx/.pdf/.txt）或其 .zip 压缩包")],
                        description="一个 .zip（内含多份 .docx、.pdf 或 .txt），或单份报告文件")
    metadata = FileField("元数据表（Excel，可选）",
                         description="第一行列名：文件名（必填）、标题、地区、年度、机构、网址、类型；任何一行有问题则整批不导入")


class ReferenceDeleteForm(ChineseForm):
    """Withdraw an outside reference report from the comparison."""
