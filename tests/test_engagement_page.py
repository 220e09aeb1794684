"""The engagement page reads its panels' rows with the engagement (procurement/page.py, core/sqljson.py): the rows
read back from the JSON are the rows the panels' own statements give, value for value and type for type."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from evalhub.extensions import db
from evalhub.procurement import page, team
from evalhub.procurement.models import EngagementState
from evalhub.review import services as R
from evalhub.review.models import PanelStatus
from tests import factories
from tests.test_engagement_team import roster

LETTER = '报告第三部分绩效指标"产出数量"未说明数据来源；\n请补充\\核实后重新提交，并附佐证材料。'


def _returned_and_resubmitted(world):
    """A report sent back with a letter (quotes, a backslash and a line break in it), then handed in again (a
    version with no panel yet): every kind of value the submissions panel shows, NULLs included."""
    e = factories.in_fieldwork(world)
    factories.submit_report(e, total="71.5", grade="中")
    panel = factories.own_panel(e)
    factories.review_panel(panel, "0.5")
    assert panel.status == PanelStatus.DECIDED and panel.passed is False
    R.send_letter(panel, world.bz_staff, LETTER)
    assert e.state == EngagementState.REPORT_RETURNED
    factories.submit_report(e, total="88", grade="良")
    return e


def _as_read(rows) -> list[tuple]:
    return [tuple((repr(value), type(value)) for value in row) for row in rows]  # Decimal("71.5") == Decimal("71.50")


def test_the_panels_rows_read_with_the_engagement_are_their_own_statements_rows(world):
    accepted = factories.in_fieldwork(world)
    people = roster(accepted.firm, world.firm_user)
    team.name_team(accepted, team.TeamInput(lead_staff_id=people[0].id, member_staff_ids=[people[1].id, people[2].id],
                                            reason="调整项目团队"), world.firm_user)
    team.name_team(accepted, team.TeamInput(lead_staff_id=people[1].id, member_staff_ids=[people[2].id],
                                            reason="原主评人调离"), world.firm_user)  # closes earlier rows
    factories.accept_report(accepted)
    returned = _returned_and_resubmitted(world)
    planned = factories.engagement(world)  # no firm, no team, nothing handed in
    db.session.commit()
    shapes = set()
    for e in (accepted, returned, planned):
        for name, rows in page._PARTS.items():
            own = list(db.session.execute(rows, {"engagement_id": e.id}))
            assert page.read(e.id) is e
            held = page.rows_of(name, e)
            assert _as_read(held) == _as_read(own), (name, e.id)
            assert [row._fields for row in held] == [tuple(row._mapping) for row in own]
            shapes.add((name, len(own), any(value is None for row in own for value in row)))
        db.session.commit()  # forgets what the page held
    submissions = {row.version: row for row in page.rows_of("submissions", returned) if row.kind.value == "report"}
    assert submissions[1].letter == LETTER and submissions[1].concluded_total == Decimal("71.50")
    assert submissions[2].panel_id is None and submissions[2].concluded_grade.label == "良"
    lead, *members = page.rows_of("team", accepted)
    assert lead.is_lead is True and lead.name == people[1].name and [m.name for m in members] == [people[2].name]
    assert ("team", 0, False) in shapes and ("submissions", 3, True) in shapes  # empty lists and NULLs were read


def test_the_page_shows_what_it_read_in_one_statement_with_the_engagement(world, login):
    e = _returned_and_resubmitted(world)
    db.session.commit()
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    for user in (world.bz_staff, world.firm_user):
        client = login(user)
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            html = client.get(f"/engagements/{e.id}").get_data(as_text=True)
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
        assert team.lead(e).name in html
        assert "退回整改" in html and "已提交，待组织评审" in html and "报告结论：71.5 分，中" in html
        assert "核实后重新提交" in html  # the letter, as sent
        reading = [s for s in seen if "submission" in s or "engagement_member" in s]
        assert len(reading) == 1 and "engagement_member" in reading[0] and "FROM engagement" in reading[0], reading
        seen.clear()
