"""Personal data: resident identity numbers are validated, encrypted at rest and shown masked."""
from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from evalhub.core.errors import ValidationFailed


def _key_material() -> bytes:
    return hashlib.sha256(("evalhub-field:" + current_app.config["FIELD_KEY"]).encode()).digest()


def _fernet() -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_key_material()))


def validate_id_number(value: str, field: str = "id_number") -> str:
    try:
        return ric.validate(ric.compact(value or ""))
    except ValidationError:
        raise ValidationFailed("身份证号码无效：请检查位数、出生日期和末位校验码。", {field: "身份证号码无效"})


def mask_id_number(number: str) -> str:
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def protect_id_number(value: str, field: str = "id_number") -> dict[str, str]:
    """Validated number → the three stored columns (ciphertext, masked form, keyed digest)."""
    number = validate_id_number(value, field)
    return {
        "id_number_encrypted": _fernet().encrypt(number.encode()).decode(),
        "id_number_masked": mask_id_number(number),
        "id_number_digest": id_number_digest(number),
    }


def id_number_digest(number: str) -> str:
    return hmac.new(_key_material(), ric.compact(number).encode(), hashlib.sha256).hexdigest()


def reveal_id_number(encrypted: str) -> str:
    return _fernet().decrypt(encrypted.encode()).decode()


def birth_month_day(encrypted: str) -> tuple[int, int] | None:
    """(month, day) of birth from an encrypted 18-digit identity number; None when it cannot be read."""
    try:
        digits = reveal_id_number(encrypted)[10:14]
        return int(digits[:2]), int(digits[2:])
    except (InvalidToken, ValueError, IndexError):
        return None


def encrypt_field(text: str) -> str:
    """Any other secret kept at rest (a TOTP secret): encrypted with the same field key as identity numbers."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt_field(encrypted: str) -> str:
    return _fernet().decrypt(encrypted.encode()).decode()
