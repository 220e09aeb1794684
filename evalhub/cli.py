"""`flask evalhub …` commands."""
from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from evalhub.extensions import db

evalhub_cli = AppGroup("evalhub", help="evalhub 管理命令")
audit_cli = AppGroup("audit", help="审计日志")
draws_cli = AppGroup("draws", help="随机抽取记录")


@audit_cli.command("verify")
def audit_verify() -> None:
    """Walk the audit chain and report the first broken link (exit 1 if broken)."""
    from evalhub.core.audit import verify_chain

    report = verify_chain()
    if report.ok:
        click.echo(f"审计链完整：已校验 {report.checked} 个事件。")
        return
    click.echo(f"审计链断裂：{report.problem}（此前 {report.checked} 个事件完好）", err=True)
    raise SystemExit(1)


@draws_cli.command("verify")
@click.argument("draw_id", type=int)
def draws_verify(draw_id: int) -> None:
    """Re-run a recorded draw from its seed and compare with the stored result (exit 1 if different)."""
    from evalhub.core.draws import verify
    from evalhub.core.models import Draw

    record = db.session.get(Draw, draw_id)
    if record is None:
        click.echo(f"抽取记录 #{draw_id} 不存在。", err=True)
        raise SystemExit(2)
    check = verify(record)
    click.echo(f"抽取 #{record.id}（{record.purpose}）算法 {record.algorithm} 种子 {record.seed}")
    click.echo(f"记录结果：{check.recorded}")
    click.echo(f"复算结果：{check.recomputed}")
    if not check.ok:
        click.echo("不一致！", err=True)
        raise SystemExit(1)
    click.echo("一致。")


@evalhub_cli.command("demo")
def demo() -> None:
    """Load the demo data set (idempotent; refused in production)."""
    from flask import current_app

    from evalhub.demo import load_demo

    if current_app.config["ENV_NAME"] == "production":
        click.echo("生产环境（EVALHUB_ENV=production）不能加载演示数据。", err=True)
        raise SystemExit(1)
    summary = load_demo(echo=click.echo)
    click.echo(summary)


@evalhub_cli.command("reminders")
def reminders() -> None:
    """Send due-date reminders, expire and replace unanswered panel invitations, e-mail pending messages."""
    from evalhub.review.services import send_reminders

    counts = send_reminders()
    db.session.commit()
    click.echo(f"逾期未答复的邀请：{counts['expired']} 个（已补抽）；提醒：{counts['reminders']} 条；"
               f"邮件：{counts['emailed']} 封。")


credit_cli = AppGroup("credit", help="机构年度信用评价")


@credit_cli.command("compute")
@click.option("--bureau", "bureau_code", required=True, help="财政局区划代码，如 652800")
@click.option("--year", type=int, required=True)
def credit_compute(bureau_code: str, year: int) -> None:
    """Compute (or recompute) the year's ratings of every firm that worked for the bureau."""
    import sqlalchemy as sa

    from evalhub.core.models import Bureau
    from evalhub.credit.services import compute, rated_firm_ids

    bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == bureau_code)).scalar_one_or_none()
    if bureau is None:
        click.echo(f"没有区划代码为 {bureau_code} 的财政局。", err=True)
        raise SystemExit(2)
    total = len(rated_firm_ids(bureau, year))
    with click.progressbar(length=total, label=f"{bureau.short_name} {year} 年度信用评价") as bar:
        ratings = compute(bureau, year, None, progress=lambda done, _total: bar.update(1))
    db.session.commit()
    graded = [r for r in ratings if r.rated]
    click.echo(f"完成：{len(graded)} 家评级，{len(ratings) - len(graded)} 家不予评级（无已完成的评价任务）。")
    for grade in ("A", "B", "C", "D"):
        click.echo(f"  {grade} 级：{sum(1 for r in graded if r.grade and r.grade.value == grade)} 家")


evalhub_cli.add_command(credit_cli)
evalhub_cli.add_command(audit_cli)
evalhub_cli.add_command(draws_cli)


def register_cli(app: Flask) -> None:
    app.cli.add_command(evalhub_cli)
