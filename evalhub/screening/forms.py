"""Report screening forms (Flask-WTF): the buttons of the screening pages, each a CSRF-protected POST.

The rules (who may open a case from a flag, train or promote a model; a flag opens one case only; a model
this installation cannot load is refused) live in ``evalhub.screening.services``.
"""
from __future__ import annotations

from evalhub.registry.forms import ChineseForm


class OpenCaseForm(ChineseForm):
    """立案检查 from a flag card: the flag (risk, rank, reasons) is recorded as the case's trigger."""


class TrainForm(ChineseForm):
    """Train a new candidate model on evalhub's labels (a background job)."""


class PromoteForm(ChineseForm):
    """Make a candidate the active model and re-score the stored reports."""
