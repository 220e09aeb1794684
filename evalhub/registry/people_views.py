"""A person's record page (registry/people.py) and the people's records on the firm page, on the registry
blueprint (issue 14)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from evalhub.core import permissions
from evalhub.core.web import load
from evalhub.registry import people
from evalhub.registry.models import Firm, FirmStaff


def staff_records(firm: Firm) -> list:
    """(person, standing) for the firm page's 人员记分 card; empty unless the reader may see the records."""
    if not permissions.can(current_user, "firm.view", firm) or not people.records_visible(current_user, firm):
        return []
    bureau, _ = people.reading_settings(current_user, firm)
    return people.firm_records(firm, bureau=bureau)


def settings_words(firm: Firm) -> str:
    """Whose settings the reader's standings are computed with (``people.reading_settings``)."""
    return people.reading_settings(current_user, firm)[1]


def person_record(staff_id: int):
    staff = load(FirmStaff, staff_id, "staff.record.view")
    bureau, settings_of = people.reading_settings(current_user, staff.firm)  # the reader's limit, named
    standing, points = people.person_record(staff, current_user, bureau)
    return render_template("registry/person.html", staff=staff, standing=standing, points=points,
                           settings_of=settings_of, own_only=people.only_own_points(current_user, staff) is not None)


def register(bp: Blueprint) -> None:
    """Called by ``registry.views`` with its blueprint (this module does not import it: no import circle)."""
    bp.add_app_template_global(staff_records, "staff_records")
    bp.add_app_template_global(settings_words, "staff_settings_words")
    bp.add_url_rule("/people/<int:staff_id>", view_func=person_record)
