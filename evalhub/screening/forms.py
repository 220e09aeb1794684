"""Report screening forms (Flask-WTF): the buttons of the screening pages, each a CSRF-protected POST.

The rules (who may open a case from a flag, train or promote a model; a flag opens one case only; a model
this installation cannot load is refused) live in ``evalhub.screening.services``.
"""
from __future__ import annotations

from evalhub.core.listing import enum_filter, int_filter, year_filter
from evalhub.registry.forms import ChineseForm
from evalhub.review.models import SubmissionKind


class OpenCaseForm(ChineseForm):
    """立案检查 from a flag card: the flag (risk, rank, reasons) is recorded as the case's trigger."""


class TrainForm(ChineseForm):
    """Train a new candidate model on evalhub's labels (a background job)."""


class PromoteForm(ChineseForm):
    """Make a candidate the active model and re-score the stored reports."""


# The queue's query string (``/screening/queue`` and ``GET /api/v1/screening/queue``). The queue is ranked
# by ``services.queue``, so the filters are only read, never applied to a statement here.
QUEUE_FILTERS = (year_filter(), int_filter("bureau_id"), int_filter("firm_id"), enum_filter("kind", SubmissionKind))
