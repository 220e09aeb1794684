"""Excel import of plan items (row-by-row error report; nothing imported when any row is wrong) and export."""
from __future__ import annotations

import re
from typing import Callable

import sqlalchemy as sa

from evalhub.core import audit, concurrency, files
from evalhub.core.enums import Field
from evalhub.core.errors import ValidationFailed
from evalhub.core.exports import to_xlsx
from evalhub.core.jobs import job_kind
from evalhub.core.models import BudgetUnit, Job, StoredFile, User
from evalhub.extensions import db
from evalhub.procurement.models import BudgetKind, EvaluationPlan, ObjectType, ServiceKind
from evalhub.procurement.services import PlanItemInput, add_plan_item, clean_plan_item, listed_twice, plan_item_key
from evalhub.registry.imports import read_sheet

PLAN_COLUMNS = {
    "评价对象名称": "name",
    "评价类型": "object_type",
    "预算类别": "budget_kind",
    "业务领域": "field",
    "委托事项": "service_kind",
    "金额（万元）": "amount_wan",
    "被评价单位": "budget_unit",
    "委托方": "commissioner",
    "选取理由": "reason",
}


class _Units:
    """The budget units of the plan's bureau and those below it, found by what a cell names: a unit's name, or
    its 统一社会信用代码 when one is recorded. A name is unique only within its bureau (库尔勒市 and 轮台县 may
    each have a 人民医院): a name that two units share is refused, never resolved to one of them."""

    def __init__(self, plan: EvaluationPlan) -> None:
        from evalhub.core.models import Bureau

        self.plan = plan
        self.by_name: dict[str, list[BudgetUnit]] = {}
        self.by_code: dict[str, list[BudgetUnit]] = {}
        for unit in db.session.execute(
                sa.select(BudgetUnit).join(Bureau, Bureau.id == BudgetUnit.bureau_id)
                .where(Bureau.path.startswith(plan.bureau.path)).order_by(Bureau.path, BudgetUnit.id)).scalars():
            self.by_name.setdefault(unit.name, []).append(unit)
            if unit.code:
                self.by_code.setdefault(_code(unit.code), []).append(unit)

    def find(self, text: str, label: str) -> tuple[BudgetUnit | None, str | None]:
        """(the unit, None), or (None, why not in Chinese)."""
        found = self.by_name.get(text) or self.by_code.get(_code(text)) or []
        if len(found) == 1:
            return found[0], None
        if not found:
            return None, f"{label}“{text}”不是{self.plan.bureau.short_name}或其下级的预算单位"
        names = "、".join(f"{u.bureau.short_name}的{u.name}（" + (f"统一社会信用代码 {u.code}" if u.code else "未登记统一社会信用代码")
                         + "）" for u in found)
        return None, (f"{label}“{text}”有 {len(found)} 个同名预算单位：{names}，无法确定是哪一个；请在该列改填所指单位的"
                      f"统一社会信用代码（未登记代码的单位，请先在预算单位中登记代码）")


def _code(text: str) -> str:
    return re.sub(r"\s+", "", text or "").upper()  # as codes are compared on import: spaces dropped, upper case


@job_kind("import.plan_items", upload="file_id")
def import_plan_items(job: Job, report: Callable[[int, int, str], None]) -> dict:
    plan = db.session.get(EvaluationPlan, job.params["plan_id"])
    actor = db.session.get(User, job.created_by_id)
    stored = db.session.get(StoredFile, job.params["file_id"])
    if stored is None:  # an import's workbook goes when its job ends (core.jobs): a job run again finds none
        message = "上传的文件已删除（导入任务结束后不保留），请重新上传。"
        return {"failed": True, "message": message, "errors": [{"row": None, "name": "", "messages": [message]}]}
    try:
        rows = read_sheet(files.read(stored), PLAN_COLUMNS, optional={"commissioner", "service_kind"}, sheet="评价对象")
    except ValidationFailed as exc:
        return {"failed": True, "message": exc.message, "errors": [{"row": None, "name": "", "messages": [exc.message]}]}
    units = _Units(plan)
    total, errors, cleaned = len(rows), [], []
    for done, (index, row) in enumerate(rows, start=1):  # index: the row's number in Excel
        messages = []
        unit = commissioner = None
        if row["budget_unit"]:
            unit, problem = units.find(row["budget_unit"], "被评价单位")
            messages += [problem] if problem else []
        if row.get("commissioner") and row["commissioner"] != plan.bureau.name:  # the bureau's own name: it commissions
            commissioner, problem = units.find(row["commissioner"], "委托方")
            messages += [problem] if problem else []
        data = PlanItemInput(name=row["name"], object_type=row["object_type"], budget_kind=row["budget_kind"],
                             field=row["field"], amount_wan=row["amount_wan"],
                             budget_unit_id=unit.id if unit else None, reason=row["reason"],
                             commissioner_unit_id=commissioner.id if commissioner else None,
                             service_kind=row.get("service_kind") or ServiceKind.KEY_EVALUATION)
        try:
            cleaned.append((index, data, clean_plan_item(plan, data)))
        except ValidationFailed as exc:
            messages.extend(m for k, m in exc.fields.items() if not (k == "budget_unit_id" and unit is None and row["budget_unit"]))
        if messages:
            errors.append({"row": index, "name": row["name"], "messages": messages})
        report(done, total, f"已检查 {done}/{total} 行")
    # Against the plan as it stands, holding it to the commit (``report`` above commits, so not before): the same
    # workbook imported twice at once has the second job wait, then find every row listed.
    concurrency.hold(plan)
    first_row: dict[tuple, int] = {}
    for index, data, values in cleaned:
        key = plan_item_key(values["name"], values["budget_unit_id"], values["service_kind"])
        twin = (f"与第 {first_row[key]} 行重复（评价对象名称、被评价单位和委托事项相同）" if key in first_row
                else listed_twice(plan, values["name"], values["budget_unit_id"], values["service_kind"]))
        first_row.setdefault(key, index)
        if twin:
            listed = next((e for e in errors if e["row"] == index), None)  # a row may have a problem already
            if listed is None:
                errors.append({"row": index, "name": values["name"], "messages": [twin]})
            else:
                listed["messages"].append(twin)
    errors.sort(key=lambda e: e["row"])
    if errors:
        return {"failed": True, "errors": errors, "message": f"{len(errors)} 行有错误，未导入任何评价对象。请修改后重新上传。"}
    created = [add_plan_item(plan, data, actor, values=values) for _index, data, values in cleaned]
    audit.record("plan.imported", plan, actor=actor, summary=f"{plan.year} 年计划批量导入 {len(created)} 个评价对象",
                 payload={"file_sha256": stored.sha256})
    db.session.commit()
    report(total, total, "导入完成")
    return {"imported": len(created), "message": f"已导入 {len(created)} 个评价对象。"}


def plan_rows(plan: EvaluationPlan) -> list[dict]:
    return [{
        "序号": i, "评价对象名称": item.name, "评价类型": item.object_type.label, "预算类别": item.budget_kind.label,
        "业务领域": item.field.label, "委托事项": item.service_kind.label, "金额（万元）": float(item.amount / 10000),
        "被评价单位": item.budget_unit.name, "委托方": item.commissioner_name, "选取理由": item.reason,
        "任务编号": item.engagement.reference if item.engagement else "",
        "任务状态": item.engagement.state.label if item.engagement else "",
        "承担机构": item.engagement.firm.name if item.engagement and item.engagement.firm else "",
    } for i, item in enumerate(plan.items, start=1)]


def plan_xlsx(plan: EvaluationPlan) -> bytes:
    notes = None
    if plan.approval_reason:  # approved past the plan checks' warnings: the reason travels with the plan
        notes = {"批准说明": [f"提示事项：{w}" for w in plan.approval_warnings or []] + [f"仍予批准的理由：{plan.approval_reason}"]}
    return to_xlsx(plan_rows(plan), f"{plan.year}年度重点绩效评价计划", notes=notes)


def plan_template_xlsx() -> bytes:
    notes = [f"评价类型可填：{'、'.join(m.label for m in ObjectType)}",
             f"预算类别可填：{'、'.join(m.label for m in BudgetKind)}",
             f"业务领域可填：{'、'.join(m.label for m in Field)}",
             f"委托事项可填（留空为重点绩效评价）：{'、'.join(m.label for m in ServiceKind)}",
             "金额以万元为单位；被评价单位、委托方填写预算单位全称（下级有同名单位的，改填其统一社会信用代码），委托方留空表示由财政局委托",
             "委托方不得与被评价单位相同（主体分离）"]
    return to_xlsx([], "评价对象", columns=list(PLAN_COLUMNS), notes={"填写说明": notes})
