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


screening_cli = AppGroup("screening", help="报告质量筛查")


class _Bar:
    """Adapts the services' progress(done, total, message) to a click progress bar."""

    def __init__(self, label: str):
        self.label, self.bar, self.done = label, None, 0

    def __call__(self, done: int, total: int, message: str = "") -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=total, label=self.label)
            self.bar.__enter__()
        self.bar.label = f"{self.label}：{message}" if message else self.label
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


@screening_cli.command("train")
def screening_train() -> None:
    """Train on the recorded labels; the new model is a candidate until a bureau admin promotes it."""
    from evalhub.screening import learning
    from evalhub.screening.services import labelled_frame, train_model

    frame = labelled_frame()
    click.echo(f"有标注的报告 {len(frame)} 份，其中不合格 {int(frame['label'].sum()) if len(frame) else 0} 份。")
    bar = _Bar("训练报告筛查模型")
    try:
        model = train_model(None, progress=bar)
    except learning.NotEnoughLabels as exc:
        bar.close()
        click.echo(str(exc), err=True)
        raise SystemExit(2)
    bar.close()
    db.session.commit()
    card = model.card
    click.echo(f"模型 {model.version}：{card['algorithm_label']}（待启用，请在“报告筛查 › 模型”页面由管理员启用）")
    names = {"logistic_regression": "逻辑回归", "gradient_boosting": "梯度提升", "rule_score": "规则评分",
             "length_only": "仅按篇幅", "best_single_feature": "最佳单一特征"}
    for group in ("candidates", "baselines"):
        for key, m in card[group].items():
            click.echo(f"  {names.get(key, key):<8} ROC-AUC {m['roc_auc']}  平均精度 {m['average_precision']}  "
                       f"前 {card['budget']:.0%} 精确率 {m['precision_at_budget']}")


@screening_cli.command("rescreen")
@click.option("--year", type=int, default=None, help="只重新筛查该年度（默认全部）")
def screening_rescreen(year: int | None) -> None:
    """Screen stored submissions again against the whole corpus."""
    from evalhub.screening.services import rescreen

    bar = _Bar("重新筛查")
    count = rescreen(year=year, progress=bar)
    bar.close()
    db.session.commit()
    click.echo(f"已重新筛查 {count} 份。")


evalhub_cli.add_command(screening_cli)
evalhub_cli.add_command(credit_cli)
evalhub_cli.add_command(audit_cli)
evalhub_cli.add_command(draws_cli)


def register_cli(app: Flask) -> None:
    app.cli.add_command(evalhub_cli)
