"""Pages of an engagement's lead evaluator (主评人) and team (procurement/team.py), on the procurement blueprint.

The firm names them on /engagements/<id>/team; the bureau reads the same page; the engagement page shows them
through the template global below (the page checked its own permission); the budget unit's page shows the
lead through ``results.services.lead_evaluator``.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectField, StringField
from wtforms.validators import Length

from evalhub.core import permissions
from evalhub.core.web import handle_form, load
from evalhub.procurement import page, team
from evalhub.procurement.models import Engagement
from evalhub.registry import people
from evalhub.registry.forms import BLANK, ChineseForm, MultiCheckboxField


class TeamForm(ChineseForm):
    lead_staff_id = SelectField("主评人", choices=[BLANK], validate_choice=False)
    member_staff_ids = MultiCheckboxField("团队成员", choices=[], validate_choice=False)
    reason = StringField("变更理由", validators=[Length(max=300, message="变更理由不超过 300 字")],
                         description="已指定团队后再变更时必填")


def engagement_team(engagement: Engagement) -> list:
    """The team now, lead first, as rows (id, is_lead, name): read with the engagement page (``team.PAGE_ROWS``),
    which has already checked that it may show the engagement."""
    return page.rows_of("team", engagement) if engagement.firm_id is not None else []


def _form(engagement: Engagement, formdata=None) -> TeamForm:
    roster = [s for s in engagement.firm.staff if s.active] if engagement.firm else []
    current = team.members(engagement)
    if current:
        lead_id = next((m.staff_id for m in current if m.is_lead), None)
        member_ids = [m.staff_id for m in current if not m.is_lead]
    else:
        lead_id, member_ids = team.proposed(engagement)
    form = TeamForm(formdata=formdata, data={"lead_staff_id": str(lead_id or ""),
                                             "member_staff_ids": [str(i) for i in member_ids if i != lead_id]})
    options = [(str(s.id), f"{s.name}（{s.role.label}）") for s in roster]
    form.lead_staff_id.choices = [BLANK] + options
    form.member_staff_ids.choices = options
    return form


def _render(engagement: Engagement, form: TeamForm | None = None, status: int = 200):
    may_name = permissions.can(current_user, "engagement.team.name", engagement)
    current = team.members(engagement)
    roster = [s for s in engagement.firm.staff if s.active] if engagement.firm else []
    standing = people.standings(roster, engagement.bureau) if roster else {}
    return render_template(
        "procurement/engagement_team.html", e=engagement, members=current, history=team.history(engagement),
        form=(form or _form(engagement)) if may_name else None, may_name=may_name,
        # Open, and not frozen for a named team (under review, or returned with no round left): no form to refuse.
        open_state=engagement.state in team.OPEN_STATES and not (current and team.change_block(engagement)),
        standing=standing, roster=roster,
    ), status


def engagement_team_page(engagement_id: int):
    engagement = load(Engagement, engagement_id, "engagement.team.view")
    if request.method == "GET":
        return _render(engagement)
    permissions.require(current_user, "engagement.team.name", engagement)  # 403 for a reader posting
    form = _form(engagement, formdata=request.form)
    return handle_form(form, lambda: team.name_team(engagement, team.TeamInput(
        lead_staff_id=form.lead_staff_id.data, member_staff_ids=form.member_staff_ids.data or [],
        reason=form.reason.data), current_user),
        failed=lambda status: _render(engagement, form, status),
        to=url_for("procurement.engagement_team_page", engagement_id=engagement.id),
        message="主评人及项目团队已保存。")


def register(bp: Blueprint) -> None:
    """Called by ``procurement.views`` with its blueprint (this module does not import it: no import circle)."""
    bp.add_app_template_global(engagement_team, "engagement_team")
    bp.add_url_rule("/engagements/<int:engagement_id>/team", view_func=engagement_team_page, methods=["GET", "POST"])
