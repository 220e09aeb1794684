"""Demo of issue 14's fairness rules for experts and complainants (`flask evalhub demo`, near the end).

- 巴州 rates the experts of its decided panels (按时完成, 意见质量): most well; one expert, late on three panels,
  is rated poorly three times and is out of draws with the reason (review/ratings.py) — shown on the expert's
  page and the record at /experts/<id>/ratings.
- A complaint to 巴州 that is declined (不予立案) with a reason; the summary line gives its reference and 查询码,
  so the public lookup (/public/complaints/lookup) can be tried.
Idempotent: nothing happens once any expert rating exists.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core.models import Bureau, User
from evalhub.demo import clock
from evalhub.extensions import db
from evalhub.review import ratings as RT
from evalhub.review.models import PanelStatus, ReviewPanel
from evalhub.supervision import services as V

LATE_NOTES = ("逾期 5 天提交评审意见，经两次催办", "答复邀请逾期，评审意见逾期 3 天提交", "评审意见逾期一周，且意见笼统")


def load_fairness(echo: Callable[[str], object] = print, *, load_time: datetime | None = None) -> int:
    if db.session.execute(sa.select(RT.ExpertRating.id)).first():
        return 0
    echo("演示数据：专家评审表现评价、不予立案的投诉 …")
    load_time = load_time or clock.now_local()
    clock.at(load_time - timedelta(minutes=5), forward_only=True)
    bz = db.session.execute(sa.select(Bureau).where(Bureau.code == "652800")).scalar_one_or_none()
    staff = db.session.execute(sa.select(User).where(User.username == "bz.staff")).scalar_one_or_none()
    if bz is None or staff is None:
        return 0
    decided = db.session.execute(sa.select(ReviewPanel).where(
        ReviewPanel.bureau_id == bz.id, ReviewPanel.status != PanelStatus.REVIEWING)
        .order_by(ReviewPanel.decided_at.desc(), ReviewPanel.id.desc())).scalars().all()
    # The expert who sat on the most of them (never the demo's own expert1) was late three times.
    demo_expert = db.session.execute(sa.select(User.expert_id).where(User.username == "expert1")).scalar_one_or_none()
    seats = Counter(x.id for p in decided for x in RT.ratable(p) if x.id != demo_expert)
    late = next((x for x, n in seats.most_common(1) if n >= 3), None)
    late_panels = [p for p in decided if late in {x.id for x in RT.ratable(p)}][:3]
    panels = list(dict.fromkeys(decided[:12] + late_panels))
    created = 0
    for panel in panels:
        for expert in RT.ratable(panel):
            if expert.id == late and panel in late_panels:
                RT.rate_expert(panel, expert.id, staff, timeliness=2, quality=3, note=LATE_NOTES[late_panels.index(panel)])
            else:
                RT.rate_expert(panel, expert.id, staff, timeliness=5 - (expert.id % 2), quality=4,
                               note="按时提交，意见具体、有依据")
            created += 1
    complaint = V.file_complaint(bureau_id=bz.id, firm_name="巴州某评价咨询公司", text=(
        "该公司去年在某项目评价中收费偏高，且评价结论对被评价单位过于宽松，希望财政部门关注。"),
        engagement_reference=None, complainant_name=None, complainant_contact=None, address="203.0.113.14")
    code = complaint.lookup_code
    V.decline_complaint(complaint, staff, "所反映机构不在本局第三方机构库中，且未提供具体评价项目和事实依据，"
                                          "不予立案；如有具体线索，可补充评价任务编号后重新投诉。")
    db.session.commit()
    echo(f"演示数据：不予立案的投诉 {complaint.reference}，查询码 {code}（/public/complaints/lookup）")
    return created + 1
