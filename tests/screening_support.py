"""Shared set-up for the screening tests: engagements in fieldwork with reports uploaded through the real
submit path (which screens them)."""
from __future__ import annotations


from evalhub.review import services as R
from evalhub.review.models import SubmissionKind
from tests import factories
from tests.factories import docx_bytes

CHAPTERS = R.REPORT_CHAPTERS
INDICATORS = [R.IndicatorInput("决策", "立项依据充分性", "10", "9"), R.IndicatorInput("过程", "资金到位率", "20", "18"),
              R.IndicatorInput("产出", "完成数量", "35", "33"), R.IndicatorInput("效益", "群众满意度", "35", "32")]


def in_fieldwork(world, *, other_firm: bool = False, **kw):
    """A contracted engagement whose work plan was approved: the firm may now upload its report.
    other_firm: 克州's engagement with the world's other firm (a different firm and bureau)."""
    if other_firm:
        kw.setdefault("bureau_key", "kz")
        kw.setdefault("unit", "克州农业农村局")
        e = factories.contracted(world, firm=world.other_firm, **kw)
        firm_user, staff = world.other_firm_user, world.kz_staff
    else:
        e = factories.contracted(world, **kw)
        firm_user, staff = world.firm_user, world.bz_staff
    factories.approve_plan(e, firm_user, staff)  # the work plan through a real panel
    factories.name_lead(e, firm_user)
    return e, firm_user


def upload_report(world, text: str, *, other_firm: bool = False, **kw):
    """(engagement, submission): a report with ``text`` uploaded by the contracted firm."""
    e, firm_user = in_fieldwork(world, other_firm=other_firm, **kw)
    submission = R.submit(e, SubmissionKind.REPORT, "评价报告.docx", docx_bytes(text), firm_user,
                          indicators=INDICATORS, concluded_total="92", concluded_grade="优")
    return e, submission


def report_text(project: str, unit: str, firm: str, *, specific: bool = True, year: int = 2024) -> str:
    """A short report in the eight chapters; ``specific`` decides numbers, actors and deadlines."""
    if specific:
        body = {
            "基本情况": f"{project}由{unit}组织实施，{year}年预算安排300.00万元，实际支出270.00万元，预算执行率90.0%。",
            "绩效评价工作开展情况": f"{firm}于{year + 1}年3月至5月抽查了红星村、光明乡等14个实施点，回收有效问卷420份。",
            "综合评价情况及评价结论": "综合得分92分，评价等级为优。",
            "绩效评价指标分析": "产出数量指标完成率96.5%，质量达标率98.2%；光明乡2处设施延期1个月投入使用。",
            "主要经验及做法": "建立月调度机制，每月5日前通报进度，对滞后乡镇限期整改。",
            "存在的问题及原因分析": f"一是光明乡配套资金18万元迟至{year}年11月才到位，导致2处设施延期。",
            "有关建议": f"建议{unit}财务科于{year + 1}年9月底前完成剩余设施验收并报备案。",
            "其他需要说明的问题": "无。",
        }
    else:
        body = {
            "基本情况": f"{project}由{unit}组织实施，项目实施总体顺利，取得了较好的社会效益和经济效益。",
            "绩效评价工作开展情况": f"受委托，{firm}对项目进行了全面评价，评价工作严格按照有关规定开展。",
            "综合评价情况及评价结论": "经评价，该项目总体绩效较好，达到了预期的绩效目标。",
            "绩效评价指标分析": "项目决策科学合理，过程管理规范有序，产出和效益目标基本实现。",
            "主要经验及做法": "领导高度重视，组织保障有力，各项工作有序推进。",
            "存在的问题及原因分析": "预算绩效管理意识有待进一步提高。项目管理制度有待进一步完善。",
            "有关建议": "进一步加强预算绩效管理，提高思想认识。进一步完善项目管理制度，规范资金使用。",
            "其他需要说明的问题": "无。",
        }
    lines = [f"{year}年度{project}绩效评价报告"]
    for numeral, chapter in zip("一二三四五六七八", CHAPTERS):
        lines += [f"{numeral}、{chapter}", body[chapter]]
    return "\n".join(lines)
