"""Demo: a credit objection that corrects the record (issue 14, `flask evalhub demo`, after the ratings).

巴州's 2025 ratings are under publicity (published the day before the load date). A firm whose work plan the
system shows as submitted late objects to its 合同履行 score, naming the late submission(s) and attaching the
post office's receipt; 巴州's administrator upholds it, records the real submission date for each record
(the submission itself stays as it was), and the firm's rating is recomputed — that firm only — with the score
before and after on the answer, and the changed rating published again with a new objection window.
When the year has no late submission, the same flow runs on an administrative penalty the bureau entered and
that was revoked on review (the record no longer counts). Idempotent: nothing happens once a 2025 objection
of 巴州 names records.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Callable

import sqlalchemy as sa

from evalhub.core.models import Bureau, User
from evalhub.credit import services as C
from evalhub.credit.models import CreditRating, RatingStatus
from evalhub.demo import clock
from evalhub.extensions import db


def load_corrected_objection(echo: Callable[[str], object], *, load_time: datetime) -> int:
    bz = db.session.execute(sa.select(Bureau).where(Bureau.code == "652800")).scalar_one_or_none()
    if bz is None:
        return 0
    ratings = db.session.execute(sa.select(CreditRating).where(
        CreditRating.bureau_id == bz.id, CreditRating.year == 2025, CreditRating.status == RatingStatus.PUBLISHED,
        CreditRating.rated.is_(True)).order_by(CreditRating.total, CreditRating.id)).scalars().all()
    if any(o.contested for r in ratings for o in r.objections):
        return 0  # loaded before
    # firm1 (the demo's firm account) first, as in the case the issue describes
    firm1 = db.session.execute(sa.select(User.firm_id).where(User.username == "firm1")).scalar_one_or_none()
    ratings.sort(key=lambda r: r.firm_id != firm1)
    chosen = next(((r, C.contestable(r).get("performance")) for r in ratings if C.contestable(r).get("performance")),
                  None)
    admin = db.session.execute(sa.select(User).where(User.username == "bz.admin")).scalar_one_or_none()
    if admin is None or not ratings:
        return 0
    if chosen is None:
        return _external_record_story(echo, bz, ratings[0], admin, load_time)
    rating, records = chosen
    records = records[:2]
    firm_user = _firm_user(rating)
    if firm_user is None:
        return 0
    echo("演示数据：信用评价异议（指明记录，成立后逐条更正并重新计算）…")
    dues = {r["ref"]: r.get("due") for c in rating.components if c["code"] == "performance" for r in c["records"]}
    clock.at(load_time - timedelta(minutes=20), forward_only=True)  # after publication, just before the load time
    mailed = "；".join(f"{r['label'].split('（')[0]}已于约定日期前以邮寄方式报送" for r in records)
    objection = C.object_to(
        rating, firm_user, f"合同履行得分有误：{mailed}，系统显示的是纸质材料录入系统的日期。附邮政 EMS 回执。",
        [("EMS邮寄回执.txt", f"EMS 回执：{mailed}".encode("utf-8"))], component="performance",
        records=[r["ref"] for r in records])
    clock.at(load_time - timedelta(minutes=10), forward_only=True)
    fixes = {r["ref"]: dues[r["ref"]] for r in records}  # the receipt: sent on the day the contract set
    C.answer(objection, admin, "异议成立", "经核对邮政 EMS 回执，实施方案均在合同约定日期前寄出，按回执日期更正提交日期并重新计算。",
             corrections=fixes)
    db.session.flush()
    echo(f"演示数据：{rating.firm.name} 的异议成立，更正 {len(objection.corrections)} 条记录，"
         f"评分 {objection.total_before} → {objection.total_after}。")
    return 1 + len(objection.corrections)



def _firm_user(rating: CreditRating) -> User | None:
    return db.session.execute(sa.select(User).where(User.firm_id == rating.firm_id).order_by(User.id)).scalars().first()


def _external_record_story(echo: Callable[[str], object], bz: Bureau, rating: CreditRating, admin: User,
                           load_time: datetime) -> int:
    """No late submission this year: the bureau enters an administrative penalty against the firm and
    recomputes (the changed rating is published again and the firm told); the firm objects naming that record
    (the penalty was revoked on administrative review); the bureau upholds and the record no longer counts."""
    firm_user = _firm_user(rating)
    if firm_user is None:
        return 0
    echo("演示数据：信用评价异议（外部信用记录经核实不计入，重新计算）…")
    clock.at(load_time - timedelta(minutes=25), forward_only=True)
    record = C.add_external_record(
        bz, rating.firm, admin, kind="行政处罚", occurred_on=date(rating.year, 6, 18),
        description="巴州市场监督管理局行政处罚决定书（巴市监处〔2025〕118号）：未按规定公示年度报告",
        deduction="3", filename="行政处罚决定书.txt", data="巴市监处〔2025〕118号 行政处罚决定书（扫描件说明）".encode("utf-8"))
    C.compute(bz, rating.year, admin)  # the penalty counts: this firm's rating changes and is published again
    ref = f"external:{record.id}"
    clock.at(load_time - timedelta(minutes=15), forward_only=True)
    objection = C.object_to(
        rating, firm_user, "外部信用扣分有误：巴市监处〔2025〕118号行政处罚决定已于 2025 年 9 月经行政复议撤销，附复议决定书。",
        [("行政复议决定书.txt", "巴州人民政府行政复议决定书：撤销巴市监处〔2025〕118号处罚决定。".encode("utf-8"))],
        component="external", records=[ref])
    clock.at(load_time - timedelta(minutes=10), forward_only=True)
    C.answer(objection, admin, "异议成立", "经核对行政复议决定书，该处罚决定已被撤销，该记录不计入评价并重新计算。")
    db.session.flush()
    echo(f"演示数据：{rating.firm.name} 的异议成立，更正 {len(objection.corrections)} 条记录，"
         f"评分 {objection.total_before} → {objection.total_after}。")
    return 2 + len(objection.corrections)
