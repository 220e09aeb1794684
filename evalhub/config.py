"""Settings from EVALHUB_* environment variables, with safe defaults.

Only deployment-level settings live here. Rules a bureau may change (pass marks, thresholds, caps)
are bureau settings in ``evalhub.core.settings``.
"""
from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"EVALHUB_{name}", default)


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value in (None, ""):
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Production keys: at least this long (`secrets.token_hex(32)` gives 64), and not a placeholder that example
# files ship (deploy/evalhub.env.example: CHANGE-ME) — whoever knows the session key signs a cookie as anyone.
MIN_KEY_LENGTH = 32
_PLACEHOLDER_MARKS = ("changeme", "replaceme", "placeholder", "example", "yoursecret")
_GENERATE = "python3 -c 'import secrets; print(secrets.token_hex(32))'"


def key_problem(name: str, value: str) -> str | None:
    """Why ``value`` may not serve as the production key EVALHUB_``name``, or None."""
    plain = "".join(c for c in value.lower() if c.isalnum())
    if any(mark in plain for mark in _PLACEHOLDER_MARKS) or len(set(value)) < 8:
        return f"EVALHUB_{name} 仍是示例占位值：生产环境必须换成随机生成的密钥（{_GENERATE}）。"
    if len(value) < MIN_KEY_LENGTH:
        return f"EVALHUB_{name} 太短（{len(value)} 个字符）：生产环境的密钥至少 {MIN_KEY_LENGTH} 个字符（{_GENERATE}）。"
    return None


ENV_NAMES = ("development", "production")  # EVALHUB_ENV: unset is development


class Config:
    """Built from the environment at app creation; tests pass overrides to create_app."""

    def __init__(self, instance_path: Path) -> None:
        self.ENV_NAME = _env("ENV", "development")
        # Every production safeguard asks ``ENV_NAME == "production"``: a misspelt name ("Production", "prod")
        # must stop the start, not quietly give development's generated key, plain cookies and Host-built links.
        if self.ENV_NAME not in ENV_NAMES:
            raise RuntimeError(f"EVALHUB_ENV 的值 {self.ENV_NAME!r} 无效：只能是 "
                               + " 或 ".join(ENV_NAMES) + "（区分大小写）。")
        instance_path.mkdir(parents=True, exist_ok=True)

        secret = _env("SECRET_KEY")
        field_key = _env("FIELD_KEY")
        if self.ENV_NAME == "production":
            if not secret:
                raise RuntimeError("EVALHUB_SECRET_KEY 未设置：生产环境必须配置会话密钥。")
            # FIELD_KEY unset falls back to the session key, checked here already.
            problem = key_problem("SECRET_KEY", secret) or (field_key and key_problem("FIELD_KEY", field_key))
            if problem:
                raise RuntimeError(problem)
        if not secret:
            # A development key kept in the instance folder, so sessions survive restarts
            # and several workers share it.
            key_file = instance_path / "secret_key"
            if not key_file.exists():
                key_file.write_text(secrets.token_hex(32))
            secret = key_file.read_text().strip()
        self.SECRET_KEY = secret
        # Key for protected personal data (identity numbers). Separate from the session key
        # so that rotating one does not make the other unreadable.
        self.FIELD_KEY = field_key or secret

        self.SQLALCHEMY_DATABASE_URI = _env(
            "DATABASE_URL", f"sqlite:///{instance_path / 'evalhub.sqlite3'}"
        )
        self.SQLALCHEMY_ENGINE_OPTIONS = {}
        # A pooled connection idle this long is checked before use (``driver.ping_after_idle``), not every one:
        # SQLAlchemy's pool_pre_ping cost a round trip on every request.
        self.DB_PING_AFTER_IDLE_SECONDS = float(_env("DB_PING_AFTER_IDLE_SECONDS", "2"))
        self.SQLALCHEMY_TRACK_MODIFICATIONS = False

        # Session cookies: HttpOnly and SameSite always; Secure unless explicitly serving plain HTTP.
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _env_bool("COOKIE_SECURE", self.ENV_NAME == "production")
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.REMEMBER_COOKIE_SECURE = self.SESSION_COOKIE_SECURE
        self.REMEMBER_COOKIE_SAMESITE = "Lax"
        self.PERMANENT_SESSION_LIFETIME = timedelta(hours=_env_int("SESSION_HOURS", 8))
        self.WTF_CSRF_TIME_LIMIT = None  # a token lives as long as the session

        self.LOGIN_MAX_FAILURES = _env_int("LOGIN_MAX_FAILURES", 5)
        self.LOGIN_LOCK_MINUTES = _env_int("LOGIN_LOCK_MINUTES", 15)
        # Failed sign-ins from one address in an hour, over all accounts (an office shares one address).
        self.LOGIN_FAILURES_PER_ADDRESS_HOUR = _env_int("LOGIN_FAILURES_PER_ADDRESS_HOUR", 100)
        # werkzeug's default (scrypt) in production; tests lower it to keep the suite fast.
        self.PASSWORD_HASH_METHOD = _env("PASSWORD_HASH_METHOD", "scrypt")
        self.API_TOKEN_DAYS = _env_int("API_TOKEN_DAYS", 30)
        # Password policy (等级保护 2.0 身份鉴别): one policy for the whole system, set by its operator — it holds
        # before any bureau exists (`users create-admin`) and for accounts that belong to no bureau (core/passwords.py).
        self.PASSWORD_MIN_LENGTH = _env_int("PASSWORD_MIN_LENGTH", 10)
        self.PASSWORD_MIN_CLASSES = _env_int("PASSWORD_MIN_CLASSES", 3)  # of upper, lower, digit, symbol
        self.PASSWORD_HISTORY = _env_int("PASSWORD_HISTORY", 5)  # a new password differs from the last N
        self.PASSWORD_MAX_AGE_DAYS = _env_int("PASSWORD_MAX_AGE_DAYS", 0)  # 0: passwords do not expire
        # One-time links (core/accounts.py): activation of an account created without a password, password reset.
        self.ACTIVATION_LINK_DAYS = _env_int("ACTIVATION_LINK_DAYS", 7)
        self.RESET_LINK_HOURS = _env_int("RESET_LINK_HOURS", 24)
        # "忘记密码": requests per source address per hour, and reset links per account per hour.
        self.RESET_REQUESTS_PER_HOUR = _env_int("RESET_REQUESTS_PER_HOUR", 5)
        self.RESET_LINKS_PER_ACCOUNT_HOUR = _env_int("RESET_LINKS_PER_ACCOUNT_HOUR", 3)
        # A firm's self-registration (an application and an account each): per source address per hour.
        self.FIRM_REGISTRATIONS_PER_HOUR = _env_int("FIRM_REGISTRATIONS_PER_HOUR", 10)
        # How every link in an e-mail or printed by the CLI starts: https://evalhub.example.gov.cn. Never the
        # request's Host (a client writes it: reset-link poisoning), so production refuses to start without it;
        # development (`make run`) falls back to the request's address.
        self.PUBLIC_URL = (_env("PUBLIC_URL") or "").strip() or None
        if self.PUBLIC_URL is None and self.ENV_NAME == "production":
            raise RuntimeError("EVALHUB_PUBLIC_URL 未设置：生产环境必须配置平台的对外地址（如 https://evalhub.example.gov.cn），"
                               "邮件中的激活、重置密码链接由此生成。")
        if self.PUBLIC_URL is not None and (urlsplit(self.PUBLIC_URL).scheme not in ("http", "https")
                                            or not urlsplit(self.PUBLIC_URL).hostname):
            raise RuntimeError(f"EVALHUB_PUBLIC_URL 无效：{self.PUBLIC_URL!r}，应形如 https://evalhub.example.gov.cn。")
        self.TOTP_ISSUER = _env("TOTP_ISSUER", "evalhub 绩效评价平台")
        # An enrolment of the second factor begun and not confirmed within this many minutes is void: its secret
        # (shown on the screen at the begin) is cleared, and the administrator begins again.
        self.TOTP_ENROLMENT_MINUTES = _env_int("TOTP_ENROLMENT_MINUTES", 15)

        self.FILE_STORE = Path(_env("FILE_STORE", str(instance_path / "files")))
        self.MAX_UPLOAD_MB = _env_int("MAX_UPLOAD_MB", 50)
        # Flask refuses bigger request bodies before our code sees them (413); a little headroom
        # for the other form fields of a multipart request.
        self.MAX_CONTENT_LENGTH = (self.MAX_UPLOAD_MB + 1) * 1024 * 1024
        # What an uploaded zip (.docx, .xlsx) may unpack to, in total and per compressed byte, and how many
        # parts it may have: beyond these it is refused as a zip bomb before anything reads it (core/files.py).
        self.FILE_UNZIPPED_MAX_MB = _env_int("FILE_UNZIPPED_MAX_MB", 200)
        self.FILE_ZIP_MAX_ENTRIES = _env_int("FILE_ZIP_MAX_ENTRIES", 2000)
        self.FILE_ZIP_MAX_RATIO = _env_int("FILE_ZIP_MAX_RATIO", 100)
        # Text extraction (python-docx, pdfplumber) runs in a child process with these limits (core/extract.py).
        self.FILE_EXTRACT_SECONDS = _env_int("FILE_EXTRACT_SECONDS", 20)
        self.FILE_EXTRACT_MEMORY_MB = _env_int("FILE_EXTRACT_MEMORY_MB", 1024)
        self.FILE_EXTRACT_ISOLATED = _env_bool("FILE_EXTRACT_ISOLATED", True)

        # Trained screening models (joblib + model card); the repository's models_ml/ unless set.
        self.MODELS_DIR = Path(_env("MODELS_DIR", str(Path(__file__).resolve().parent.parent / "models_ml")))

        self.REDIS_URL = _env("REDIS_URL")
        self.HUEY_SQLITE_PATH = _env("HUEY_SQLITE_PATH", str(instance_path / "huey.sqlite3"))
        # Tests and one-off scripts run jobs in-process.
        self.JOBS_IMMEDIATE = _env_bool("JOBS_IMMEDIATE", False)

        self.PAGE_SIZE = _env_int("PAGE_SIZE", 20)
        self.MAIL_SERVER = _env("SMTP_HOST")
        self.MAIL_PORT = _env_int("SMTP_PORT", 25)
        self.MAIL_FROM = _env("MAIL_FROM", "evalhub@localhost")
        # One JSON line per request on stdout (user id, route, status, duration) for log collection.
        self.LOG_JSON = _env_bool("LOG_JSON", False)
        # Signs audit checkpoints (default: derived from SECRET_KEY); changing it makes old files "other key".
        self.AUDIT_CHECKPOINT_KEY = _env("AUDIT_CHECKPOINT_KEY")
        # How many reverse proxies (nginx) sit in front and may set X-Forwarded-For and -Proto (never -Host, which
        # deploy/nginx-evalhub.conf does not set); 0 when serving directly.
        self.PROXY_HOPS = _env_int("PROXY_HOPS", 0)
        self.TESTING = False

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.isupper()}
