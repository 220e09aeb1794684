"""`flask evalhub …` commands."""
from __future__ import annotations

from contextlib import contextmanager
from typing import NoReturn

import click
from flask import Flask
from flask.cli import AppGroup

from evalhub.core.inputs import INT_MAX
from evalhub.extensions import db

evalhub_cli = AppGroup("evalhub", help="evalhub 管理命令")
audit_cli = AppGroup("audit", help="审计日志")
draws_cli = AppGroup("draws", help="随机抽取记录")


class _Bounded(click.ParamType):
    """An integer within bounds the database can hold (an id, a year): anything else is refused in Chinese
    before any query runs (a number past them would end in an OverflowError's traceback)."""

    name = "integer"

    def __init__(self, low: int, high: int, what: str):
        self.low, self.high, self.what = low, high, what

    def convert(self, value, param, ctx):
        from evalhub.core.listing import parse_int  # the bounds the web applies to a number typed in

        try:
            return parse_int(str(value), self.low, self.high)
        except ValueError:
            self.fail(f"{value} 不是 {self.low}–{self.high} 之间的整数（{self.what}）。", param, ctx)


_ID = _Bounded(1, INT_MAX, "编号")
_YEAR = _Bounded(2000, 9999, "年度")


def _stop(message: str, status: int = 1) -> NoReturn:
    """End the command: the reason on stderr, and the exit status scripts test (1 refused, 2 not found)."""
    click.echo(message, err=True)
    raise SystemExit(status)


@contextmanager
def _committed(refusals: type[Exception] | tuple[type[Exception], ...], prefix: str = ""):
    """Run a service: commit what it wrote, or — when it refuses — write nothing and stop with status 1."""
    try:
        yield
    except refusals as exc:
        db.session.rollback()
        _stop(f"{prefix}{exc.message}")
    db.session.commit()


def _user_named(username: str):
    import sqlalchemy as sa

    from evalhub.core.models import User

    user = db.session.execute(sa.select(User).where(sa.func.lower(User.username) == username.strip().lower())).scalar_one_or_none()
    return user if user is not None else _stop(f"没有用户名为 {username} 的账户。", 2)


@audit_cli.command("verify")
@click.option("--checkpoint", "checkpoint_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="检查点文件（可多次给出）：核对检查点之前的事件未被改写或删除")
@click.option("--ignore-signature", is_flag=True,
              help="签名密钥已更换时，仍按检查点文件的内容核对")
def audit_verify(checkpoint_files: tuple[str, ...], ignore_signature: bool) -> None:
    """Walk the audit chain and report the first broken link (exit 1 if broken, 2 if a file is unreadable).

    Also checks the chain against every checkpoint given with --checkpoint and the signed checkpoints
    stored in the database: an event rewritten (with every later hash recomputed) or deleted before a
    checkpoint shows there, and nowhere else."""
    from pathlib import Path

    from evalhub.core import anchoring

    files = []
    for name in checkpoint_files:
        try:
            files.append(anchoring.parse(Path(name).read_text(encoding="utf-8"), Path(name).name))
        except (anchoring.CheckpointFileError, UnicodeDecodeError) as exc:
            _stop(getattr(exc, "message", f"{name} 不是 UTF-8 文本的检查点文件。"), 2)
    report = anchoring.verify_all(files, ignore_signature=ignore_signature)
    for note in report.notes:
        click.echo(f"说明：{note}")
    if report.ok:
        anchored = f"；与 {report.checkpoints} 个检查点相符" if report.checkpoints else ""
        click.echo(f"审计链完整：已校验 {report.checked} 个事件{anchored}。")
        if not files:
            click.echo("提示：数据库内的哈希链只能发现未重算哈希的改动；请用 --checkpoint 指定保存在库外的检查点文件核对。")
        return
    if report.broken_id is not None and report.by_checkpoint:
        click.echo(f"审计链与检查点不符：{report.problem}", err=True)
    elif report.broken_id is not None:
        click.echo(f"审计链断裂：{report.problem}（此前 {report.checked} 个事件完好）", err=True)
    for problem in report.problems[1 if report.broken_id is not None else 0:]:
        click.echo(f"检查点问题：{problem}", err=True)
    raise SystemExit(1)


@audit_cli.command("checkpoint")
@click.option("--out", "out", type=click.Path(file_okay=True, dir_okay=True), default=".",
              help="检查点文件保存到此目录（或文件名），默认当前目录")
def audit_checkpoint(out: str) -> None:
    """Note the chain's head now: sign it, write it to the log and to a JSON file to keep outside."""
    from pathlib import Path

    from evalhub.core import anchoring

    target = Path(out)
    folder = target if target.is_dir() else target.parent
    if not folder.is_dir():
        _stop(f"保存检查点文件的目录 {folder} 不存在：请先建好目录，或换一个位置。未生成检查点。")
    with _committed(anchoring.ChainBroken):
        checkpoint, created = anchoring.create_checkpoint(source="cli")
        if target.is_dir():
            target = target / anchoring.filename(checkpoint)
        # written (as .partial) before the commit, named after it: a checkpoint is kept only with its file outside,
        # and a file only for a checkpoint kept
        partial = target.with_name(target.name + ".partial")
        try:
            partial.write_text(anchoring.dumps(anchoring.document(checkpoint)), encoding="utf-8")
        except OSError as exc:
            db.session.rollback()
            partial.unlink(missing_ok=True)
            _stop(f"无法写入检查点文件 {target}：{exc.strerror or exc}。未生成检查点。")
    try:
        partial.replace(target)
    except OSError as exc:
        _stop(f"检查点 #{checkpoint.id} 已生成，但文件未能改名为 {target}：{exc.strerror or exc}；请保存 {partial}。")
    verb = "已生成" if created else "自上次检查点以来没有新事件，沿用"
    click.echo(f"{verb}检查点 #{checkpoint.id}：截至事件 #{checkpoint.last_event_id}，共 {checkpoint.event_count} 个事件，"
               f"头部哈希 {checkpoint.head_hash}")
    click.echo(f"检查点文件：{target}（请保存在本系统之外）")


@draws_cli.command("verify")
@click.argument("draw_id", type=_ID)
def draws_verify(draw_id: int) -> None:
    """Re-check a recorded draw (exit 1 if anything differs): the revealed secret against the commitment published
    at the announcement, the candidate list against its hash, the seed against secret, hash and the witnesses'
    numbers, the result against the seed, and all of it against the audit events written at the time."""
    from evalhub.core.draws import verify
    from evalhub.core.models import Draw

    record = db.session.get(Draw, draw_id)
    if record is None:
        _stop(f"抽取记录 #{draw_id} 不存在。", 2)
    check = verify(record)
    click.echo(f"抽取 #{record.id}（{record.purpose}）算法 {record.algorithm} 状态 {record.status.label} 种子 {record.seed or '（未揭晓）'}")
    if record.commitment:
        click.echo(f"承诺值 {record.commitment}；候选名单哈希 {record.candidate_hash}")
        click.echo("监督人数字：" + "；".join(f"{w.user.display_name or w.user.username} {w.number or '（未输入）'}"
                                         for w in record.witnesses))
    elif record.derived_from_id:
        click.echo(f"派生自抽取 #{record.derived_from_id}：种子 = sha256(来源种子|候选名单哈希 {record.candidate_hash})")
    else:
        click.echo("说明：旧格式抽取（无监督人与承诺值），只能核对种子与结果。")
    click.echo(f"记录结果：{check.recorded}")
    click.echo(f"复算结果：{check.recomputed}")
    if check.event_id is not None:
        click.echo(f"对照审计事件 #{check.event_id}（抽取时写入的种子、候选、排除、结果与算法版本）")
    for note in check.notes:
        click.echo(f"说明：{note}")
    if not check.ok:
        if not check.rerun_ok:
            click.echo("不一致！按记录的种子复算，结果与记录不同。", err=True)
        for mismatch in check.mismatches:
            click.echo(f"不一致！{mismatch}", err=True)
        raise SystemExit(1)
    click.echo("一致。（审计事件本身的完整性请用 flask evalhub audit verify --checkpoint 核对）")


@evalhub_cli.command("demo")
def demo() -> None:
    """Load the demo data set (idempotent; refused in production)."""
    from flask import current_app

    from evalhub.demo import load_demo

    if current_app.config["ENV_NAME"] == "production":
        _stop("生产环境（EVALHUB_ENV=production）不能加载演示数据。")
    summary = load_demo(echo=click.echo)
    click.echo(summary)


def _backup_step(step, path: str):
    """Run backup or restore on ``path``, echoing its progress; a BackupError ends the command with status 1."""
    from pathlib import Path

    from evalhub.core.backup import BackupError

    try:
        return step(Path(path), progress=lambda line: click.echo(f"  {line}"))
    except BackupError as exc:
        _stop(exc.message)


@evalhub_cli.command("backup")
@click.option("--out", "out", type=click.Path(), default=".", show_default=True,
              help="备份文件名，或保存备份的目录（自动命名 evalhub-backup-<时间>.tar.gz）")
def backup_command(out: str) -> None:
    """Back up the database and the file store together into one archive."""
    from evalhub.core.backup import backup

    summary = _backup_step(backup, out)
    click.echo(f"已备份：{summary.path}（{len(summary.tables)} 张表 {summary.rows} 行，文件 {summary.files} 个，"
               f"数据库版本 {summary.revision}）")


@evalhub_cli.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
def restore_command(archive: str) -> None:
    """Restore a backup into an empty database that `flask db upgrade` has just created (all or nothing)."""
    from evalhub.core.backup import restore

    summary = _backup_step(restore, archive)
    click.echo(f"已恢复：{len(summary.tables)} 张表 {summary.rows} 行，文件 {summary.files} 个。"
               "请运行 flask evalhub audit verify 核对审计链。")


orgs_cli = AppGroup("orgs", help="财政局与预算单位")


@orgs_cli.command("import")
@click.argument("workbook", type=click.Path(exists=True, dir_okay=False))
def orgs_import(workbook: str) -> None:
    """Import bureaus and budget units from Excel (sheets 财政局 and 预算单位); nothing when any row is bad."""
    from pathlib import Path

    from evalhub.core.errors import ValidationFailed
    from evalhub.core.organisations import import_workbook

    with _committed(ValidationFailed):
        result = import_workbook(Path(workbook).read_bytes(), actor=None, source="命令行导入", filename=Path(workbook).name)
    click.echo(result.summary)


@orgs_cli.command("template")
@click.argument("out", type=click.Path(dir_okay=False), default="组织机构导入模板.xlsx")
def orgs_template(out: str) -> None:
    """Write the import template (both sheets, their columns and an example row)."""
    from pathlib import Path

    from evalhub.core.organisations import template

    Path(out).write_bytes(template())
    click.echo(f"已生成导入模板：{out}")


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
@click.option("--year", type=_YEAR, required=True)
def credit_compute(bureau_code: str, year: int) -> None:
    """Compute (or recompute) the year's ratings of every firm that worked for the bureau."""
    import sqlalchemy as sa

    from evalhub.core.errors import DomainError
    from evalhub.core.models import Bureau
    from evalhub.credit.services import check_year, compute, rated_firm_ids

    bureau = db.session.execute(sa.select(Bureau).where(Bureau.code == bureau_code)).scalar_one_or_none()
    if bureau is None:
        _stop(f"没有区划代码为 {bureau_code} 的财政局。", 2)
    with _committed(DomainError):
        check_year(year)
        total = len(rated_firm_ids(bureau, year))
        with click.progressbar(length=total, label=f"{bureau.short_name} {year} 年度信用评价") as bar:
            ratings = compute(bureau, year, None, progress=lambda done, _total: bar.update(1))
    graded = [r for r in ratings if r.rated]
    click.echo(f"完成：{len(graded)} 家评级，{len(ratings) - len(graded)} 家不予评级（无已完成的评价任务）。")
    for grade in ("A", "B", "C", "D"):
        click.echo(f"  {grade} 级：{sum(1 for r in graded if r.grade and r.grade.value == grade)} 家")
    # No actor from the command line: the rules still apply (an intentional violation suspends the firm,
    # as a system action of its library bureau), and the operator reads what they did.
    for rating in (r for r in ratings if r.watch_list):
        suspended = "，已暂停入库资格（系统按规则执行）" if rating.suspension_id else ""
        click.echo(f"  重点关注：{rating.firm.name}（{rating.watch_reason}）{suspended}")


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
        _stop(str(exc), 2)
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
@click.option("--year", type=_YEAR, default=None, help="只重新筛查该年度（默认全部）")
def screening_rescreen(year: int | None) -> None:
    """Screen stored submissions again against the whole corpus."""
    from evalhub.screening.services import rescreen

    bar = _Bar("重新筛查")
    count = rescreen(year=year, progress=bar)
    bar.close()
    db.session.commit()
    click.echo(f"已重新筛查 {count} 份。")


@screening_cli.command("index")
def screening_index() -> None:
    """Put stored screenings the shared index lacks into it (once, after upgrading to the shared index)."""
    from evalhub.screening.services import index_missing

    bar = _Bar("写入共享索引")
    count = index_missing(progress=bar)
    bar.close()
    db.session.commit()
    click.echo(f"已写入共享索引 {count} 份。")


users_cli = AppGroup("users", help="账户")


@users_cli.command("create-admin")
@click.option("--username", default=None, help="用户名（不给出时交互输入）")
@click.option("--password", default=None, help="密码（不给出时交互输入，不回显）；须符合密码策略")
@click.option("--display-name", "display_name", default=None, help="姓名，默认“系统管理员”")
@click.option("--email", default=None, help="电子邮箱（可选，用于找回密码）")
def users_create_admin(username: str | None, password: str | None, display_name: str | None, email: str | None) -> None:
    """Create a system administrator (the first one on an empty database); audited."""
    from evalhub.core import accounts, passwords
    from evalhub.core.errors import ValidationFailed

    if username is None:
        username = click.prompt("用户名")
    if password is None:
        click.echo(f"密码要求：{passwords.policy().describe()}")
        password = click.prompt("密码", hide_input=True, confirmation_prompt="再次输入密码")
    with _committed(ValidationFailed, "未创建："):
        user = accounts.create_first_admin(username=username, password=password, display_name=display_name,
                                           email=email)
    click.echo(f"已创建系统管理员 {user.username}（账户 #{user.id}）。请用该账户登录网页，在“账户”与各财政局的“账户管理”中创建其他账户。")


@users_cli.command("reset-link")
@click.argument("username")
def users_reset_link(username: str) -> None:
    """Print a one-time password-reset link for USERNAME (e.g. the only administrator lost their password);
    audited. A second factor, if any, is kept (see reset-totp)."""
    from evalhub.core import accounts
    from evalhub.core.errors import Conflict

    user = _user_named(username)
    purpose = accounts.LinkPurpose.ACTIVATION if user.awaiting_activation else accounts.LinkPurpose.RESET
    with _committed(Conflict):
        token = accounts.issue_link(user, purpose, None)
    click.echo(f"{purpose.label}链接（{accounts.lifetime_text(purpose)}内有效，只能使用一次）：")
    click.echo(accounts.link_url(token, purpose))


@users_cli.command("reset-totp")
@click.argument("username")
@click.option("--reason", required=True, help="原因（记入审计日志）")
def users_reset_totp(username: str, reason: str) -> None:
    """Clear USERNAME's second factor (a lost phone, and nobody above to reset it); audited."""
    from evalhub.core import accounts
    from evalhub.core.errors import DomainError

    user = _user_named(username)
    with _committed(DomainError):
        accounts.totp_reset(user, None, reason)
    click.echo(f"已重置 {username} 的两步验证；下次登录时如本局要求，须重新绑定验证器。")


evalhub_cli.add_command(users_cli)
evalhub_cli.add_command(screening_cli)
evalhub_cli.add_command(credit_cli)
evalhub_cli.add_command(audit_cli)
evalhub_cli.add_command(draws_cli)
evalhub_cli.add_command(orgs_cli)


def register_cli(app: Flask) -> None:
    app.cli.add_command(evalhub_cli)
