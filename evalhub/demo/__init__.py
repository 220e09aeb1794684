"""The demo data set (`flask evalhub demo`): bureaus of Xinjiang, budget units from the seeds, an invented
firm library and expert pool, and one account per role.

- Idempotent: every row is looked up by its natural key first (bureau code, budget unit name within its
  bureau, username, credit code, identity-number digest), so a second run changes nothing.
- Everything that has a service goes through it (firm applications and status changes, staff, recusal
  relations, experts, ties, accounts), so the audit chain records the demo like any other work and
  `flask evalhub audit verify` passes. Bureaus and budget units have no service; the demo writes their
  rows and an audit event for each.
- Deterministic: the whole plan (names, codes, identity numbers, qualifications) is built from
  ``random.Random(2025)`` before the database is touched, and is the same on every run and machine.
- Dated like a bureau's real year (``demo.clock``, the services' clock simulated while the demo loads):
  organisations, firms and experts enter the system in January–February 2023, the 2023–2024 plans run on
  their real days, the current cycle and the registry's recent decisions (suspensions, new applications) lie
  days to months before the load date. Two jumps back in the audit log's times: the results loop
  (``demo.results``) returns to summer 2025 for the findings of the 2024 reports after the current cycle;
  the migrated archive (``demo.screening``) is imported at the load time with its rows dated in their years,
  and the credit ratings of 2023 and 2024 that count it follow on their own dates.
- All firms, people and numbers are invented; the bureaus and budget units are real names taken from the
  user's seed documents.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Callable

import sqlalchemy as sa
from stdnum.cn import ric

from evalhub.core import audit
from evalhub.core.enums import BureauLevel, Field, Role
from evalhub.core.models import Bureau, BudgetUnit, User
from evalhub.core.organisations import import_organisations
from evalhub.core.passwords import policy_waived
from evalhub.core.personal import id_number_digest
from evalhub.core.services import create_user
from evalhub.core.timeutil import simulated_clock
from evalhub.core.validators import compose_id_number, compose_uscc
from evalhub.extensions import db
from evalhub.registry import services as registry
from evalhub.registry.models import (
    CertificateKind, CounterpartType, Degree, Expert, ExpertStatus, ExpertTie, Firm, FirmKind, FirmRelation,
    FirmStaff, FirmStatus, LegalForm, ProfessionalTitle, RelationKind, StaffRole, TieKind,
)
from evalhub.demo import clock

DEMO_PASSWORD = "evalhub-demo"
SEED = 2025

# --- organisations (real names, from the seeds) -----------------------------------------------------

# code, full name, short name, level, parent code
BUREAUS: list[tuple[str, str, str, BureauLevel, str | None]] = [
    ("650000", "新疆维吾尔自治区财政厅", "自治区", BureauLevel.REGION, None),
    ("652800", "巴音郭楞蒙古自治州财政局", "巴州", BureauLevel.PREFECTURE, "650000"),
    ("653000", "克孜勒苏柯尔克孜自治州财政局", "克州", BureauLevel.PREFECTURE, "650000"),
    ("653200", "和田地区财政局", "和田地区", BureauLevel.PREFECTURE, "650000"),
    ("652801", "库尔勒市财政局", "库尔勒市", BureauLevel.COUNTY, "652800"),
    ("652822", "轮台县财政局", "轮台县", BureauLevel.COUNTY, "652800"),
    ("653001", "阿图什市财政局", "阿图什市", BureauLevel.COUNTY, "653000"),
    ("653227", "民丰县财政局", "民丰县", BureauLevel.COUNTY, "653200"),
]

BUDGET_UNITS: dict[str, list[str]] = {
    "650000": ["新疆维吾尔自治区教育厅", "新疆维吾尔自治区卫生健康委员会", "新疆维吾尔自治区水利厅"],
    # seed 002: the eleven objects of 巴州's 2024 key evaluations
    "652800": ["巴州统计局", "巴州统计局普查中心", "巴州农业科学研究院", "巴州民政局", "巴州医疗保障局",
               "巴州红旗高级技工学校（巴州红旗中等职业学校）", "巴州博斯腾湖科学研究所", "巴州水利局",
               "库尔勒经济技术开发区市场监督管理局", "库尔勒经济技术开发区人才服务中心",
               "库尔勒经济技术开发区管理委员会经济发展局"],
    "653000": ["克州农业农村局", "克州教育局", "克州卫生健康委员会"],
    "653200": ["和田地区水利局", "和田地区交通运输局"],
    "652801": ["库尔勒市教育局", "库尔勒市住房和城乡建设局"],
    "652822": ["轮台县医疗保障局", "轮台县教育局", "轮台县农业农村局"],
    "653001": ["阿图什市民政局"],
    # seed 003: 民丰县's five key projects and their units
    "653227": ["民丰县民政局", "民丰县住房和城乡建设局", "民丰县文化体育广播电视和旅游局",
               "民丰县农业农村和水利局", "民丰县尼雅镇人民政府", "民丰县财政局-彩票公益金"],
}

# 主管部门 → 所属单位: conflict checks look up and down this tree.
UNIT_PARENTS = {"巴州统计局普查中心": "巴州统计局", "库尔勒经济技术开发区人才服务中心": "库尔勒经济技术开发区管理委员会经济发展局"}

# username, display name, role, bureau code (bureau users only)
BUREAU_ACCOUNTS: list[tuple[str, str, Role, str | None]] = [
    ("admin", "系统管理员", Role.SYSTEM_ADMIN, None),
    ("xj.admin", "自治区财政厅绩效评价中心管理员", Role.BUREAU_ADMIN, "650000"),
    # the region's second officer: a draw of the region is witnessed by someone of the region other than its operator
    ("xj.staff", "自治区财政厅绩效评价中心工作人员", Role.BUREAU_STAFF, "650000"),
    ("bz.admin", "巴州财政局绩效评价中心管理员", Role.BUREAU_ADMIN, "652800"),
    ("kz.admin", "克州财政局绩效评价中心管理员", Role.BUREAU_ADMIN, "653000"),
    ("mf.admin", "民丰县财政局管理员", Role.BUREAU_ADMIN, "653227"),
    ("lt.admin", "轮台县财政局管理员", Role.BUREAU_ADMIN, "652822"),
    ("bz.staff", "巴州财政局绩效评价中心工作人员", Role.BUREAU_STAFF, "652800"),
]
FIRM1_NAME = "巴州天衡绩效评价咨询有限公司"  # admitted in 巴州; the firm user `firm1` belongs to it
FIRM_ACCOUNT = ("firm1", f"{FIRM1_NAME} 联系人")
EXPERT_ACCOUNT = "expert1"
ACCOUNT_NAMES = [a[0] for a in BUREAU_ACCOUNTS] + [FIRM_ACCOUNT[0], EXPERT_ACCOUNT]

# Who acts for a bureau in the demo (status changes need a bureau admin; bureaus without one: the system admin).
BUREAU_ACTOR = {"650000": "xj.admin", "652800": "bz.admin", "653000": "kz.admin", "653227": "mf.admin",
                "652822": "lt.admin"}

# Prefixes of identity numbers that stdnum's division table knows, by where the person lives.
ID_DIVISIONS = {
    "650000": ["650100", "652801", "653022", "653221", "110105", "310104"],
    "652800": ["652801", "652822", "652823", "652826", "652827", "652828", "652829"],
    "653000": ["653022", "653023", "653024"],
    "653200": ["653221", "653222", "653223", "653225", "653226", "653227"],
    "652801": ["652801"],
    "652822": ["652822"],
    "653001": ["653022", "653023"],
    "653227": ["653227", "653226"],
}
PHONE_AREA = {"650000": "0991", "652800": "0996", "652801": "0996", "652822": "0996", "653000": "0908",
              "653001": "0908", "653200": "0903", "653227": "0903"}
CITY = {"650000": "新疆乌鲁木齐市", "652800": "新疆库尔勒市", "652801": "新疆库尔勒市", "652822": "新疆轮台县",
        "653000": "新疆阿图什市", "653001": "新疆阿图什市", "653200": "新疆和田市", "653227": "新疆民丰县"}
STREETS = ["人民东路", "萨依巴格路", "石化大道", "建设路", "团结南路", "天山西路", "北京南路", "友好路", "解放路", "迎宾路"]

# --- firms (invented) -------------------------------------------------------------------------------

F = Field
# bureau code, name, kind, legal form, status story, fields
FIRMS: list[tuple[str, str, FirmKind, LegalForm, str, list[Field]]] = [
    # 自治区财政厅的机构库
    ("650000", "新疆天瑞绩效管理咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.FINANCE, F.SOCIAL]),
    ("650000", "新疆正衡会计师事务所（特殊普通合伙）", FirmKind.CPA_FIRM, LegalForm.SPECIAL_PARTNERSHIP, "admitted", [F.ACCOUNTING, F.FINANCE]),
    ("650000", "新疆华信立达资产评估有限公司", FirmKind.APPRAISAL_FIRM, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.CONSTRUCTION]),
    ("650000", "天山财经学院财政绩效研究中心", FirmKind.UNIVERSITY, LegalForm.PUBLIC_INSTITUTION, "admitted", [F.FINANCE, F.EDUCATION, F.STATISTICS]),
    ("650000", "新疆公共政策评估研究院", FirmKind.RESEARCH_INSTITUTE, LegalForm.PUBLIC_INSTITUTION, "admitted", [F.FINANCE, F.SCIENCE]),
    ("650000", "新疆预算绩效管理研究会", FirmKind.RESEARCH_INSTITUTE, LegalForm.SOCIAL_ORGANISATION, "pending", [F.FINANCE]),
    ("650000", "新疆明理律师事务所", FirmKind.LAW_FIRM, LegalForm.GENERAL_PARTNERSHIP, "suspended", [F.LAW]),
    ("650000", "新疆丝路智库咨询股份有限公司", FirmKind.CONSULTANCY, LegalForm.JOINT_STOCK, "removed", [F.FINANCE, F.TRANSPORT]),
    # 巴州
    ("652800", "巴州天衡绩效评价咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.FINANCE, F.AGRICULTURE, F.SOCIAL]),
    ("652800", "巴音郭楞恒信会计师事务所（普通合伙）", FirmKind.CPA_FIRM, LegalForm.GENERAL_PARTNERSHIP, "admitted", [F.ACCOUNTING, F.FINANCE]),
    ("652800", "库尔勒博衡资产评估有限公司", FirmKind.APPRAISAL_FIRM, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.CONSTRUCTION]),
    ("652800", "巴州孔雀河律师事务所", FirmKind.LAW_FIRM, LegalForm.GENERAL_PARTNERSHIP, "admitted", [F.LAW]),
    ("652800", "新疆梨城工程造价咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "reinstated", [F.CONSTRUCTION, F.WATER]),
    ("652800", "巴州绿洲农业发展研究院", FirmKind.RESEARCH_INSTITUTE, LegalForm.SOCIAL_ORGANISATION, "admitted", [F.AGRICULTURE, F.SCIENCE]),
    ("652800", "开都河学院绩效评价中心", FirmKind.UNIVERSITY, LegalForm.PUBLIC_INSTITUTION, "admitted", [F.EDUCATION, F.FINANCE]),
    ("652800", "新疆塔里木华诚咨询股份有限公司", FirmKind.CONSULTANCY, LegalForm.JOINT_STOCK, "admitted", [F.FINANCE, F.HEALTH]),
    ("652800", "巴州众和社会服务评估中心", FirmKind.CONSULTANCY, LegalForm.SOCIAL_ORGANISATION, "admitted", [F.SOCIAL, F.HEALTH]),
    ("652800", "巴州信达财务咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "pending_self", [F.ACCOUNTING]),
    ("652800", "库尔勒智远项目管理咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "pending", [F.CONSTRUCTION, F.TRANSPORT]),
    ("652800", "巴州金桥会计师事务所有限责任公司", FirmKind.CPA_FIRM, LegalForm.LIMITED_COMPANY, "rejected", [F.ACCOUNTING]),
    ("652800", "巴州博远资产评估有限公司", FirmKind.APPRAISAL_FIRM, LegalForm.LIMITED_COMPANY, "suspended", [F.ACCOUNTING]),
    ("652800", "新疆瀚海绩效咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "removed", [F.FINANCE]),
    ("652800", "巴州恒达咨询服务有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "blacklisted", [F.FINANCE, F.AGRICULTURE]),
    # 克州
    ("653000", "克州昆仑绩效评价咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.FINANCE, F.EDUCATION]),
    ("653000", "克孜勒苏正信会计师事务所（特殊普通合伙）", FirmKind.CPA_FIRM, LegalForm.SPECIAL_PARTNERSHIP, "admitted", [F.ACCOUNTING]),
    ("653000", "阿图什天诚资产评估有限公司", FirmKind.APPRAISAL_FIRM, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.CONSTRUCTION]),
    ("653000", "克州帕米尔律师事务所", FirmKind.LAW_FIRM, LegalForm.GENERAL_PARTNERSHIP, "admitted", [F.LAW]),
    ("653000", "克州慧远管理咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "pending_self", [F.FINANCE, F.AGRICULTURE]),
    ("653000", "克州博学教育评估中心", FirmKind.CONSULTANCY, LegalForm.SOCIAL_ORGANISATION, "pending", [F.EDUCATION]),
    ("653000", "克州新丝路咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "rejected", [F.FINANCE]),
    # 和田地区
    ("653200", "和田玉都绩效评价咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.FINANCE, F.WATER]),
    ("653200", "和田正大会计师事务所（普通合伙）", FirmKind.CPA_FIRM, LegalForm.GENERAL_PARTNERSHIP, "admitted", [F.ACCOUNTING]),
    ("653200", "和田绿洲生态研究院", FirmKind.RESEARCH_INSTITUTE, LegalForm.PUBLIC_INSTITUTION, "admitted", [F.AGRICULTURE, F.ENVIRONMENT, F.WATER]),
    ("653200", "和田华夏咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "blacklisted", [F.FINANCE]),
    # 库尔勒市
    ("652801", "库尔勒信和会计师事务所有限责任公司", FirmKind.CPA_FIRM, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.FINANCE]),
    ("652801", "库尔勒德润咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.EDUCATION, F.CONSTRUCTION]),
    ("652801", "库尔勒方圆工程咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "pending", [F.CONSTRUCTION]),
    # 轮台县
    ("652822", "轮台县塔河咨询服务有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.AGRICULTURE, F.FINANCE]),
    ("652822", "轮台正信财务咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.HEALTH]),
    # 民丰县
    ("653227", "民丰县尼雅咨询服务有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.SOCIAL, F.CONSTRUCTION]),
    ("653227", "民丰昆仑会计服务有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "suspended", [F.ACCOUNTING]),
    # 阿图什市
    ("653001", "阿图什天山财务咨询有限公司", FirmKind.CONSULTANCY, LegalForm.LIMITED_COMPANY, "admitted", [F.ACCOUNTING, F.SOCIAL]),
]

ADMIT_REASON = "申请材料齐全，营业执照、信用记录、人员名册及质量控制、保密、培训制度经审核符合入库条件"


def _add_years(day: date, years: int) -> date:
    return day.replace(year=day.year + years, day=min(day.day, 28))


def stories(today: date) -> dict[str, list[tuple[str, str, date | None]]]:
    """story → [(action, reason, effective_until)]. The first step (admission or refusal) is decided in
    February 2023, the later ones on the days of ``LATER_STEPS`` before the load date ``today``."""
    y = today.year
    return {
        "pending": [],
        "pending_self": [],
        "admitted": [("admit", ADMIT_REASON, None)],
        "reinstated": [
            ("admit", ADMIT_REASON, None),
            ("suspend", "项目负责人未按合同约定到岗，评价报告逾期 45 天提交，暂停参与选聘", None),
            ("reinstate", "已提交整改报告并经审核通过，恢复参与选聘", None),
        ],
        "rejected": [("reject", "从业人员名册中具备注册会计师、资产评估师等专业资格的人员不足 3 人，且未提交质量控制制度", None)],
        "suspended": [
            ("admit", ADMIT_REASON, None),
            ("suspend", f"{y - 2} 年度信用评价为 D 级，暂停参与下一年度选聘", _add_years(today, 1)),
        ],
        "removed": [
            ("admit", ADMIT_REASON, None),
            ("remove", "机构主营业务调整，书面申请退出第三方机构库", None),
        ],
        "blacklisted": [
            ("admit", ADMIT_REASON, None),
            ("suspend", "定向检查发现评价报告数据与被评价单位账表不符，暂停选聘并立案核查", None),
            ("blacklist", f"经定向检查查实在 {y - 1} 年度重点绩效评价中编造评价数据，属故意违规，列入黑名单三年",
             _add_years(today, 3)),
        ],
    }


# The later steps of a firm's story, in days before the load date (one per step after the first).
LATER_STEPS = {"reinstated": [150, 40], "suspended": [75], "removed": [120], "blacklisted": [95, 60]}
# New applications waiting for a decision were filed these many days before the load date (in plan order).
PENDING_DAYS = [9, 6, 4, 3, 2, 2]

# Recusal register: firm name, relation kind, counterpart (budget unit name, or "bureau:CODE"), start, end, note
RELATIONS: list[tuple[str, RelationKind, str, date, date | None, str]] = [
    ("巴音郭楞恒信会计师事务所（普通合伙）", RelationKind.ACCOUNTING_AGENT, "巴州民政局", date(2022, 1, 1), None, "为下属养老服务中心代理记账"),
    ("巴州天衡绩效评价咨询有限公司", RelationKind.TAX_AGENT, "巴州医疗保障局", date(2023, 3, 1), None, "所属医保服务中心的税务代理"),
    ("库尔勒博衡资产评估有限公司", RelationKind.AUDIT_CLIENT, "巴州统计局", date(2021, 6, 1), date(2023, 12, 31), "经济普查专项资金审计"),
    ("巴州绿洲农业发展研究院", RelationKind.OWNERSHIP, "巴州农业科学研究院", date(2019, 1, 1), None, "举办单位为巴州农业科学研究院"),
    ("新疆正衡会计师事务所（特殊普通合伙）", RelationKind.AUDIT_CLIENT, "新疆维吾尔自治区卫生健康委员会", date(2024, 2, 1), None, "年度财务报表审计"),
    ("民丰县尼雅咨询服务有限公司", RelationKind.OTHER, "民丰县住房和城乡建设局", date(2023, 5, 1), None, "承接污水处理厂运营咨询服务"),
    ("民丰昆仑会计服务有限公司", RelationKind.ACCOUNTING_AGENT, "民丰县财政局-彩票公益金", date(2022, 1, 1), None, "彩票公益金项目代理记账"),
    ("克州帕米尔律师事务所", RelationKind.STAFF_KINSHIP, "bureau:653000", date(2024, 1, 1), None, "合伙人之配偶在克州财政局任职"),
    ("轮台县塔河咨询服务有限公司", RelationKind.AUDIT_CLIENT, "轮台县医疗保障局", date(2024, 3, 1), None, "医保基金专项审计"),
]

# --- people (invented) ------------------------------------------------------------------------------

SURNAMES = "王李张刘陈杨赵黄周吴徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国玉兰红梅文斌志宏海燕鹏飞晓东丹萍雪莉新民立春亮晨光宇浩然思远佳琪欣怡嘉怡雅婷子涵俊杰博文天宇"
# Uyghur-style names: own name · father's name; Mongolian names of 巴州 stand alone.
MINORITY_GIVEN = ["艾尔肯", "阿依古丽", "热依拉", "买买提江", "迪丽努尔", "古丽巴哈尔", "阿迪力", "帕提古丽", "吐尔洪",
                  "米热古丽", "艾克拜尔", "再努尔", "祖丽菲亚", "努尔艾力", "阿依努尔", "麦麦提敏", "阿力木江", "玛依拉",
                  "卡米力", "努尔兰", "阿不都热合曼", "古再丽努尔"]
MINORITY_FATHER = ["吐尔逊", "买买提", "艾买提", "阿不力孜", "库尔班", "托合提", "吾守尔", "阿不都拉", "司马义", "如孜",
                   "依明", "沙吾提", "卡德尔", "艾则孜", "玉素甫", "吐尔地", "喀斯木", "卡哈尔", "居麦", "哈力木"]
MONGOL_NAMES = ["巴图", "乌云其木格", "那顺巴雅尔", "其其格", "额尔敦", "阿拉坦仓", "斯琴高娃", "宝音图"]

EMPLOYERS: dict[Field, list[str]] = {
    F.FINANCE: ["新疆财经大学财政税务学院", "新疆大学经济与管理学院", "新疆社会科学院经济研究所", "塔里木大学经济与管理学院"],
    F.ACCOUNTING: ["新疆财经大学会计学院", "巴州审计局", "克州审计局", "和田地区审计局", "新疆维吾尔自治区审计厅"],
    F.LAW: ["新疆大学法学院", "新疆政法学院", "巴州法学会", "克州法律援助中心"],
    F.EDUCATION: ["新疆师范大学教育科学学院", "巴州第二中学", "克州教育科学研究所", "和田地区教育科学研究中心"],
    F.HEALTH: ["巴州人民医院", "克州人民医院", "和田地区人民医院", "新疆医科大学公共卫生学院"],
    F.AGRICULTURE: ["新疆农业大学", "塔里木大学农学院", "巴州农业技术推广中心", "和田地区农业技术推广中心"],
    F.WATER: ["新疆农业大学水利与土木工程学院", "巴州塔里木河流域管理中心", "和田地区水利水电勘测设计院"],
    F.TRANSPORT: ["新疆交通规划勘察设计研究院", "巴州公路养护中心", "克州公路管理局"],
    F.ENVIRONMENT: ["新疆环境保护科学研究院", "巴州生态环境监测站", "和田地区生态环境监测站"],
    F.SOCIAL: ["新疆大学社会学系", "巴州社会福利院", "克州社会保险中心"],
    F.SCIENCE: ["中国科学院新疆生态与地理研究所", "新疆科技发展战略研究院"],
    F.CULTURE: ["新疆艺术学院", "巴州文化馆", "和田地区博物馆"],
    F.CONSTRUCTION: ["新疆建筑设计研究院", "巴州建设工程质量安全监督站", "克州住房和城乡建设局规划设计室"],
    F.STATISTICS: ["新疆财经大学统计与数据科学学院", "巴州统计局普查中心"],
}
FIELD_WEIGHTS = {F.FINANCE: 6, F.ACCOUNTING: 5, F.LAW: 2, F.EDUCATION: 2, F.HEALTH: 2, F.AGRICULTURE: 3, F.WATER: 2,
                 F.TRANSPORT: 1, F.ENVIRONMENT: 1, F.SOCIAL: 2, F.SCIENCE: 1, F.CULTURE: 1, F.CONSTRUCTION: 2,
                 F.STATISTICS: 1}

# How many experts each bureau's pool holds (150 in all).
EXPERT_POOLS = {"650000": 30, "652800": 40, "653000": 25, "653200": 15, "652801": 12, "652822": 10,
                "653001": 9, "653227": 9}
# Experts that fail the default eligibility rule (DOMAIN.md §4), by kind, per pool
INELIGIBLE = {"650000": ["young", "old", "title"], "652800": ["young", "young", "old", "title", "degree"],
              "653000": ["young", "title"], "653200": ["old"], "652801": ["degree"], "652822": ["young"]}
EXPERT_STATUS_STORIES = [  # (pool, index within the pool, action, reason)
    ("652800", 7, "suspend", "2022 年度专家考评为“不称职”：评审意见空泛、套话多，暂停抽取一年"),
    ("652800", 12, "remove", "本人书面申请退出专家库"),
    ("650000", 5, "suspend", "连续三次被抽中后无故不参加评审"),
    ("653000", 4, "remove", "已调离原工作岗位，且连续两年未参加评审"),
    ("653200", 2, "suspend", "评审中未主动申报与被评价单位的利害关系，暂停并核查"),
]
UNAVAILABLE = [("652800", 3, "援疆挂职期间，年内不能参加评审"), ("650000", 9, "出国访学至年底")]
# Ties: (pool, index, kind, counterpart ("firm:NAME", "unit:NAME", "bureau:CODE"), start, end, note).
# An int end means "that many years before today", so the tie stays inside the 3-year avoidance window.
EXPERT_TIES = [
    ("652800", 1, TieKind.EMPLOYMENT, "firm:巴州天衡绩效评价咨询有限公司", date(2018, 3, 1), 1, "曾任该公司项目经理"),
    ("652800", 2, TieKind.KINSHIP, "firm:巴音郭楞恒信会计师事务所（普通合伙）", date(2015, 1, 1), None, "配偶为该所执行事务合伙人"),
    ("652800", 4, TieKind.INTEREST, "unit:巴州医疗保障局", date(2022, 9, 1), None, "配偶在该局任职"),
    ("652800", 5, TieKind.SHAREHOLDER, "firm:新疆塔里木华诚咨询股份有限公司", date(2020, 1, 1), None, "持股 12%"),
    ("650000", 1, TieKind.DIRECTOR, "firm:新疆天瑞绩效管理咨询有限公司", date(2021, 7, 1), None, "担任独立董事"),
    ("650000", 2, TieKind.EMPLOYMENT, "bureau:652800", date(2010, 8, 1), 2, "原巴州财政局预算科科员"),
    ("653000", 1, TieKind.EMPLOYMENT, "firm:克孜勒苏正信会计师事务所（特殊普通合伙）", date(2016, 4, 1), 1, "曾在该所执业"),
    ("653200", 1, TieKind.INTEREST, "unit:和田地区水利局", date(2023, 1, 1), None, "承担该局委托的科研课题"),
    ("653227", 1, TieKind.KINSHIP, "unit:民丰县民政局", date(2019, 1, 1), None, "兄弟在该局任职"),
    ("652822", 1, TieKind.EMPLOYMENT, "firm:轮台县塔河咨询服务有限公司", date(2017, 5, 1), date(2021, 3, 31), "曾任该公司会计（已超过回避追溯期）"),
]

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _org_code(body8: str) -> str:
    """GB 11714 organisation code: eight characters and their check character."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * w for c, w in zip(body8, weights))
    check = 11 - total % 11
    return body8 + {10: "X", 11: "0"}.get(check, str(check))


# --- the plan: everything random is drawn here, before the database is touched ------------------------

@dataclass
class StaffPlan:
    name: str
    id_number: str
    role: StaffRole
    years: int
    title: str | None
    phone: str
    certificates: list[tuple[CertificateKind, str]]


@dataclass
class FirmPlan:
    bureau: str
    input: registry.FirmInput
    story: str
    staff: list[StaffPlan] = field(default_factory=list)


@dataclass
class ExpertPlan:
    bureau: str
    index: int
    input: registry.ExpertInput


@dataclass
class Plan:
    firms: list[FirmPlan]
    experts: list[ExpertPlan]


class _Drawer:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names: set[str] = set()
        self.ids: set[str] = set()
        self.codes: set[str] = set()

    def name(self, minority_share: float = 0.25) -> str:
        while True:
            roll = self.rng.random()
            if roll < minority_share * 0.1:
                candidate = self.rng.choice(MONGOL_NAMES)
            elif roll < minority_share:
                candidate = f"{self.rng.choice(MINORITY_GIVEN)}·{self.rng.choice(MINORITY_FATHER)}"
            else:
                given = self.rng.choice(GIVEN) + (self.rng.choice(GIVEN) if self.rng.random() < 0.7 else "")
                candidate = self.rng.choice(SURNAMES) + given
            if candidate not in self.names:
                self.names.add(candidate)
                return candidate

    def id_number(self, bureau: str, birth_year: int) -> str:
        while True:
            division = self.rng.choice(ID_DIVISIONS[bureau])
            birth = f"{birth_year}{self.rng.randint(1, 12):02d}{self.rng.randint(1, 28):02d}"
            number = compose_id_number(division, birth, self.rng.randint(1, 999))
            if number not in self.ids and ric.is_valid(number):
                self.ids.add(number)
                return number

    def phone(self) -> str:
        return f"1{self.rng.choice('3589')}{self.rng.randint(0, 999_999_999):09d}"

    def uscc(self, bureau: str, kind: FirmKind, form: LegalForm) -> str:
        while True:
            if kind == FirmKind.LAW_FIRM:
                dept, sort = "3", "1"  # 司法行政 · 律师执业机构
            elif form == LegalForm.PUBLIC_INSTITUTION:
                dept, sort = "1", "2"  # 机构编制 · 事业单位
            elif form == LegalForm.SOCIAL_ORGANISATION:
                dept, sort = "5", "2"  # 民政 · 民办非企业单位
            else:
                dept, sort = "9", "1"  # 市场监管 · 企业
            if dept == "9":
                body = "MA" + "".join(self.rng.choice(USCC_ALPHABET[:10] + "ABCDEFGH") for _ in range(6))
            else:
                body = "".join(self.rng.choice("0123456789") for _ in range(8))
            code = compose_uscc(bureau, _org_code(body), department=dept, kind=sort)
            if code not in self.codes:
                self.codes.add(code)
                return code


def _staff_for(d: _Drawer, bureau: str, kind: FirmKind) -> list[StaffPlan]:
    rng = d.rng
    cert_for_kind = {
        FirmKind.CPA_FIRM: CertificateKind.CPA,
        FirmKind.APPRAISAL_FIRM: CertificateKind.ASSET_APPRAISER,
        FirmKind.LAW_FIRM: CertificateKind.LAWYER,
        FirmKind.CONSULTANCY: rng.choice([CertificateKind.CPA, CertificateKind.COST_ENGINEER, CertificateKind.TAX_ADVISER]),
        FirmKind.RESEARCH_INSTITUTE: CertificateKind.SENIOR_TITLE,
        FirmKind.UNIVERSITY: CertificateKind.SENIOR_TITLE,
    }[kind]
    out = []
    for i in range(rng.randint(2, 4)):
        role = StaffRole.PROJECT_LEAD if i == 0 else (StaffRole.ASSISTANT if i == 3 else StaffRole.EVALUATOR)
        birth_year = rng.randint(1968, 1997) if role != StaffRole.PROJECT_LEAD else rng.randint(1965, 1985)
        years = max(1, min(2025 - birth_year - 23, rng.randint(3, 25)))
        certs: list[tuple[CertificateKind, str]] = []
        if role != StaffRole.ASSISTANT:
            certs.append((cert_for_kind, f"{bureau[:4]}{rng.randint(10_000_000, 99_999_999)}"))
            if role == StaffRole.PROJECT_LEAD:
                certs.append((rng.choice([CertificateKind.SENIOR_TITLE, CertificateKind.INTERMEDIATE_TITLE]),
                              f"XJZC{rng.randint(100_000, 999_999)}"))
        title = {StaffRole.PROJECT_LEAD: rng.choice(["高级会计师", "正高级经济师", "高级工程师", "合伙人"]),
                 StaffRole.EVALUATOR: rng.choice(["会计师", "经济师", "中级审计师", None]),
                 StaffRole.ASSISTANT: None}[role]
        out.append(StaffPlan(d.name(0.3), d.id_number(bureau, birth_year), role, years, title, d.phone(), certs))
    return out


def _expert_for(d: _Drawer, bureau: str, index: int, flaw: str | None) -> ExpertPlan:
    rng = d.rng
    fields_pool, weights = list(FIELD_WEIGHTS), list(FIELD_WEIGHTS.values())
    primary = rng.choices(fields_pool, weights)[0]
    fields = [primary]
    if rng.random() < 0.4:
        second = rng.choices(fields_pool, weights)[0]
        if second != primary:
            fields.append(second)
    birth_year = rng.randint(1963, 1988)
    title = rng.choices([ProfessionalTitle.INTERMEDIATE, ProfessionalTitle.ASSOCIATE_SENIOR, ProfessionalTitle.SENIOR],
                        [3, 4, 2])[0]
    degree = rng.choices([Degree.BACHELOR, Degree.MASTER, Degree.DOCTOR], [4, 4, 2])[0]
    years = rng.randint(10, max(10, 2025 - birth_year - 24))
    if flaw == "young":  # too few years in the field
        birth_year = rng.randint(1990, 1996)
        years = rng.randint(3, 8)
    elif flaw == "old":  # over the age limit
        birth_year = rng.randint(1953, 1958)
        years = rng.randint(30, 40)
    elif flaw == "title":
        title = rng.choice([ProfessionalTitle.JUNIOR, ProfessionalTitle.NONE])
    elif flaw == "degree":
        degree = Degree.COLLEGE
    data = registry.ExpertInput(
        name=d.name(), id_number=d.id_number(bureau, birth_year), employer=rng.choice(EMPLOYERS[primary]),
        title=title, degree=degree, years_in_field=years, birth_year=birth_year, fields=fields,
        phone=d.phone(), email=None)
    return ExpertPlan(bureau, index, data)


def build_plan() -> Plan:
    d = _Drawer(SEED)
    rng = d.rng
    firms = []
    for bureau, name, kind, form, story, fields in FIRMS:
        data = registry.FirmInput(
            name=name, uscc=d.uscc(bureau, kind, form), legal_form=form, kind=kind,
            address=f"{CITY[bureau]}{rng.choice(STREETS)}{rng.randint(1, 199)}号",
            legal_representative=d.name(0.3), contact_name=d.name(0.3),
            contact_phone=f"{PHONE_AREA[bureau]}-{rng.randint(2_000_000, 2_999_999)}",
            contact_email=f"contact{len(firms) + 1:02d}@demo.evalhub.invalid",
            founded_on=date(rng.randint(2003, 2020), rng.randint(1, 12), rng.randint(1, 28)),
            description=f"主要从事{'、'.join(f.label for f in fields)}领域的预算绩效评价、绩效目标审核与管理咨询。",
            fields=fields, declares_no_major_violation=story != "rejected")
        firms.append(FirmPlan(bureau, data, story, _staff_for(d, bureau, kind)))
    experts = []
    for bureau, size in EXPERT_POOLS.items():
        flaws = INELIGIBLE.get(bureau, [])
        for index in range(size):
            # The last positions of a pool hold its ineligible experts; position 0 is always eligible.
            flaw_index = index - (size - len(flaws))
            experts.append(_expert_for(d, bureau, index, flaws[flaw_index] if flaw_index >= 0 else None))
    return Plan(firms, experts)


# --- loading -----------------------------------------------------------------------------------------

class _Loader:
    def __init__(self, load_time: datetime) -> None:
        self.created = 0
        self.bureaus: dict[str, Bureau] = {}
        self.users: dict[str, User] = {}
        self.load_time = load_time  # Beijing, naive: the real time of the load
        self.today = load_time.date()
        self.stories = stories(self.today)
        self.new_firms: list[tuple[FirmPlan, Firm]] = []  # created by this run: their stories are told

    def one(self, stmt):
        return db.session.execute(stmt).scalars().first()

    def actor_for(self, bureau_code: str) -> User:
        return self.users.get(BUREAU_ACTOR.get(bureau_code, "admin")) or self.users["admin"]

    # organisations
    def bureaus_and_units(self) -> None:
        # Through the same import as a bureau's Excel file (core.organisations): checked whole, audited.
        result = import_organisations(
            [{"code": code, "name": name, "short_name": short, "level": level.label, "parent_code": parent or ""}
             for code, name, short, level, parent in BUREAUS],
            [{"bureau_code": code, "name": name, "code": "", "parent_name": UNIT_PARENTS.get(name, "")}
             for code, names in BUDGET_UNITS.items() for name in names],
            actor=None, source="演示数据")
        self.created += result.bureaus_created + result.units_created
        for code, *_ in BUREAUS:
            self.bureaus[code] = self.one(sa.select(Bureau).where(Bureau.code == code))

    def unit(self, name: str) -> BudgetUnit:
        return self.one(sa.select(BudgetUnit).where(BudgetUnit.name == name))

    def firm_by_name(self, name: str) -> Firm:
        return self.one(sa.select(Firm).where(Firm.name == name).order_by(Firm.id))

    def account(self, username: str, display_name: str, role: Role, **org) -> User:
        user = self.one(sa.select(User).where(User.username == username))
        if user is None:
            user = create_user(username=username, password=DEMO_PASSWORD, display_name=display_name, role=role,
                               actor=self.users.get("admin"), **org)
            self.created += 1
        self.users[username] = user
        return user

    def bureau_accounts(self) -> None:
        for username, display_name, role, code in BUREAU_ACCOUNTS:
            self.account(username, display_name, role, bureau_id=self.bureaus[code].id if code else None)

    # firms
    def firms(self, plans: list[FirmPlan], *, first_day: date | None = None) -> None:
        """Applications, one to three a working day from ``first_day``; or, without it, the applications
        still waiting, filed ``PENDING_DAYS`` before the load date."""
        day = first_day
        for index, plan in enumerate(plans):
            firm = self.one(sa.select(Firm).where(Firm.uscc == plan.input.uscc))
            new = firm is None
            actor = self.actor_for(plan.bureau)
            if new:
                if first_day is not None:
                    day = clock.workdays_after(day, 1) if index % 3 == 0 and index else day
                    clock.at(day, 9 + 2 * (index % 3), 15 + index % 40, forward_only=True)
                else:
                    clock.at(self.load_time - timedelta(days=PENDING_DAYS[index % len(PENDING_DAYS)], hours=5 - index % 4),
                             forward_only=True)
                via, by = ("self", None) if plan.story == "pending_self" else ("staff", actor)
                if plan.bureau == "652800" and via == "staff":
                    by = self.users["bz.staff"]  # 巴州's applications are entered by its staff member
                firm = registry.create_firm(plan.input, self.bureaus[plan.bureau], by, via=via)
                self.created += 1
            for staff in plan.staff:
                digest = id_number_digest(staff.id_number)
                exists = self.one(sa.select(FirmStaff.id).where(FirmStaff.firm_id == firm.id,
                                                                FirmStaff.id_number_digest == digest))
                if exists is None:
                    registry.add_staff(firm, registry.StaffInput(
                        name=staff.name, id_number=staff.id_number, role=staff.role, years_experience=staff.years,
                        title=staff.title, phone=staff.phone, certificates=staff.certificates), actor)
                    self.created += 1
            if new:  # a firm's story is told once; later changes made in the app are left alone
                self.new_firms.append((plan, firm))

    def firm_decisions(self, first_day: date) -> None:
        """The bureau decides the applications of January in February, with the documents it received."""
        from evalhub.demo.documents import admission_documents  # the report generator behind it loads late

        day = first_day
        for index, (plan, firm) in enumerate(self.new_firms):
            steps = self.stories[plan.story]
            if not steps:
                continue
            day = clock.workdays_after(day, 1) if index % 4 == 0 and index else day
            clock.at(day, 10 + index % 4 * 2, index % 50, forward_only=True)
            action, reason, until = steps[0]
            actor = self.actor_for(plan.bureau)
            docs = admission_documents(firm.name, date(2023, 1, 3)) if action == "admit" else ()
            registry.change_firm_status(firm, action, actor, reason=reason, effective_until=until, documents=docs)

    def firm_later_steps(self) -> None:
        """Suspensions, removals, blacklisting and a reinstatement, in the months before the load date."""
        steps = sorted((days, order, plan, firm, step)
                       for order, (plan, firm) in enumerate(self.new_firms)
                       for days, step in zip(LATER_STEPS.get(plan.story, []), self.stories[plan.story][1:]))
        for days, _, plan, firm, (action, reason, until) in sorted(steps, key=lambda row: (-row[0], row[1])):
            clock.at(self.load_time - timedelta(days=days, hours=3), forward_only=True)
            registry.change_firm_status(firm, action, self.actor_for(plan.bureau), reason=reason, effective_until=until)

    def relations(self) -> None:
        for firm_name, kind, counterpart, start, end, note in RELATIONS:
            firm = self.firm_by_name(firm_name)
            if counterpart.startswith("bureau:"):
                bureau_id, unit_id = self.bureaus[counterpart.split(":", 1)[1]].id, None
            else:
                bureau_id, unit_id = None, self.unit(counterpart).id
            exists = self.one(sa.select(FirmRelation.id).where(
                FirmRelation.firm_id == firm.id, FirmRelation.kind == kind,
                FirmRelation.bureau_id.is_(None) if bureau_id is None else FirmRelation.bureau_id == bureau_id,
                FirmRelation.budget_unit_id.is_(None) if unit_id is None else FirmRelation.budget_unit_id == unit_id))
            if exists is None:
                registry.add_relation(firm, kind=kind, bureau_id=bureau_id, budget_unit_id=unit_id, start_date=start,
                                      end_date=end, note=note, actor=self.actor_for(firm.bureau.code))
                self.created += 1

    # experts
    def experts(self, plans: list[ExpertPlan]) -> dict[tuple[str, int], Expert]:
        by_position: dict[tuple[str, int], Expert] = {}
        new_positions = set()
        for plan in plans:
            bureau = self.bureaus[plan.bureau]
            expert = self.one(sa.select(Expert).where(Expert.id_number_digest == id_number_digest(plan.input.id_number)))
            if expert is None:  # e.g. the field key changed since the last run: fall back on name and birth year
                expert = self.one(sa.select(Expert).where(Expert.bureau_id == bureau.id, Expert.name == plan.input.name,
                                                          Expert.birth_year == plan.input.birth_year))
            if expert is None:
                expert = registry.create_expert(plan.input, bureau, self.actor_for(plan.bureau))
                new_positions.add((plan.bureau, plan.index))
                self.created += 1
            by_position[(plan.bureau, plan.index)] = expert
        for code, index, action, reason in EXPERT_STATUS_STORIES:
            if (code, index) in new_positions:
                registry.change_expert_status(by_position[(code, index)], action, reason, self.actor_for(code))
        for code, index, note in UNAVAILABLE:
            if (code, index) in new_positions:
                registry.set_expert_availability(by_position[(code, index)], available=False, until=None, note=note,
                                                 actor=self.actor_for(code))
        for code, index, kind, counterpart, start, end, note in EXPERT_TIES:
            expert = by_position[(code, index)]
            ctype, _, key = counterpart.partition(":")
            firm_id = bureau_id = unit_id = None
            if ctype == "firm":
                target = self.firm_by_name(key)
                firm_id, ctype_enum = target.id, CounterpartType.FIRM
            elif ctype == "bureau":
                target = self.bureaus[key]
                bureau_id, ctype_enum = target.id, CounterpartType.BUREAU
            else:
                target = self.unit(key)
                unit_id, ctype_enum = target.id, CounterpartType.BUDGET_UNIT
            exists = self.one(sa.select(ExpertTie.id).where(ExpertTie.expert_id == expert.id, ExpertTie.kind == kind,
                                                            ExpertTie.counterpart_name == target.name))
            if isinstance(end, int):
                end = _add_years(self.today, -end)
            if exists is None:
                registry.add_expert_tie(expert, kind=kind, counterpart_type=ctype_enum, counterpart_name=None,
                                        firm_id=firm_id, bureau_id=bureau_id, budget_unit_id=unit_id,
                                        start_date=start, end_date=end, note=note, actor=self.actor_for(code))
                self.created += 1
        return by_position

    def member_accounts(self, experts: dict[tuple[str, int], Expert]) -> None:
        firm = self.firm_by_name(FIRM1_NAME)
        self.account(FIRM_ACCOUNT[0], FIRM_ACCOUNT[1], Role.FIRM_USER, firm_id=firm.id)
        # the first eligible, active 巴州 expert in 财政经济 with no story of their own: such an expert fits
        # every object (procurement.eligibility.field_mismatch), so `expert1` can be drawn for the demo's panels
        told = {(c, i) for c, i, *_ in EXPERT_STATUS_STORIES + UNAVAILABLE + EXPERT_TIES}
        expert = next(e for (code, index), e in sorted(experts.items(), key=lambda kv: kv[0][1])
                      if code == "652800" and (code, index) not in told and F.FINANCE in e.fields
                      and not registry.expert_eligibility(e))
        self.account(EXPERT_ACCOUNT, expert.name, Role.EXPERT, expert_id=expert.id)


@policy_waived("演示账户共用 README 中公布的演示密码")  # the strength rules are for real accounts
def load_demo(echo: Callable[[str], object] = print) -> str:
    """Load (or complete) the demo data set and return a one-paragraph Chinese summary with counts."""
    load_time = clock.now_local()  # the real time: the current cycle is placed against it
    with simulated_clock(clock.to_utc(datetime(2023, 1, 3, 9, 0))), clock.seeded_draw_secrets(20230103):
        return _load(build_plan(), _Loader(load_time), echo)


def _load(plan: Plan, loader: _Loader, echo: Callable[[str], object]) -> str:
    waiting = {"pending", "pending_self"}
    try:
        echo("演示数据：财政局与预算单位 …")
        loader.bureaus_and_units()
        echo("演示数据：演示账户 …")
        clock.at(date(2023, 1, 3), 11, forward_only=True)
        loader.bureau_accounts()
        db.session.commit()
        echo(f"演示数据：第三方机构 {len(plan.firms)} 家及其从业人员、回避关系（2023 年 1—2 月入库）…")
        loader.firms([p for p in plan.firms if p.story not in waiting], first_day=date(2023, 1, 4))
        clock.at(date(2023, 1, 30), 10, forward_only=True)
        loader.relations()
        loader.firm_decisions(date(2023, 2, 1))
        db.session.commit()
        echo(f"演示数据：专家 {len(plan.experts)} 名及其申报关系 …")
        clock.at(date(2023, 2, 13), 9, forward_only=True)
        experts = loader.experts(plan.experts)
        clock.at(date(2023, 2, 15), 10, forward_only=True)
        loader.member_accounts(experts)
        db.session.commit()
        from evalhub.demo.engagements import load_engagements

        loader.created += load_engagements(echo, load_time=loader.load_time)
        from evalhub.demo.results import load_applications, load_rectification

        # the 2024 reports' findings on their 2025 days (a jump back from the current cycle), then the report
        # accepted in the current cycle
        loader.created += load_rectification(echo, load_time=loader.load_time)
        from evalhub.demo.screening import load_screening_archive

        # before credit and supervision: the 2023–2025 ratings and the random campaign include the archive,
        # imported (migrated) at the load time with its rows dated in their years
        clock.at(loader.load_time - timedelta(minutes=30), forward_only=True)
        loader.created += load_screening_archive(echo)
        from evalhub.demo.supervision import load_credit_and_supervision

        loader.created += load_credit_and_supervision(echo, load_time=loader.load_time, registry_news=lambda: (
            loader.firm_later_steps(), loader.firms([p for p in plan.firms if p.story in waiting])))
        loader.created += load_applications(echo, load_time=loader.load_time)
        from evalhub.demo.people import load_people

        loader.created += load_people(echo, load_time=loader.load_time)  # 主评人, a lead with points (issue 14)
        from evalhub.demo.credit_fairness import load_corrected_objection

        loader.created += load_corrected_objection(echo, load_time=loader.load_time)  # an objection that corrects (issue 14)
        from evalhub.demo.fairness_conflicts import load_fairness

        loader.created += load_fairness(echo, load_time=loader.load_time)  # rated experts, a declined complaint (issue 14)
        from evalhub.demo.integrity import load_integrity

        loader.created += load_integrity(echo, load_time=loader.load_time)  # a flagged pair decided; red flags (issue 17)
        if loader.created:
            clock.at(loader.load_time, forward_only=True)
            audit.record("demo.loaded", actor=loader.users.get("admin"),
                         summary=f"加载演示数据：新增 {loader.created} 条记录")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return summary(loader.created)


def summary(created: int | None = None) -> str:
    def count(model, *where) -> int:
        return db.session.execute(sa.select(sa.func.count()).select_from(model).where(*where)).scalar_one()

    levels = dict(db.session.execute(sa.select(Bureau.level, sa.func.count()).group_by(Bureau.level)).all())
    firm_status = dict(db.session.execute(sa.select(Firm.status, sa.func.count()).group_by(Firm.status)).all())
    expert_status = dict(db.session.execute(sa.select(Expert.status, sa.func.count()).group_by(Expert.status)).all())
    experts = db.session.execute(sa.select(Expert)).scalars().all()
    ineligible = sum(1 for e in experts if registry.expert_eligibility(e))
    accounts = db.session.execute(sa.select(User.username).where(User.username.in_(ACCOUNT_NAMES))).scalars().all()
    head = ("演示数据已存在，本次未做任何改动" if created == 0
            else f"演示数据已加载（本次新增 {created} 条记录）" if created else "演示数据概况")
    return (
        f"{head}：财政局 {sum(levels.values())} 个（自治区 {levels.get(BureauLevel.REGION, 0)}、"
        f"州/地区 {levels.get(BureauLevel.PREFECTURE, 0)}、县/市 {levels.get(BureauLevel.COUNTY, 0)}），"
        f"预算单位 {count(BudgetUnit)} 个；第三方机构 {sum(firm_status.values())} 家（"
        + "、".join(f"{s.label} {firm_status.get(s, 0)}" for s in FirmStatus)
        + f"），从业人员 {count(FirmStaff)} 人，回避关系 {count(FirmRelation)} 条；"
        f"评审专家 {len(experts)} 名（"
        + "、".join(f"{s.label} {expert_status.get(s, 0)}" for s in ExpertStatus)
        + f"，其中 {ineligible} 名不满足入库条件），专家申报的关联关系 {count(ExpertTie)} 条（含工作单位）；"
        f"演示账户 {len(accounts)} 个（{'、'.join(u for u in ACCOUNT_NAMES if u in accounts)}），"
        f"密码均为 {DEMO_PASSWORD}。"
    )
