"""Code validators backed by python-stdnum (GB 32100 unified social credit code)."""
from __future__ import annotations

from stdnum.cn import uscc
from stdnum.exceptions import InvalidChecksum, InvalidFormat, InvalidLength, ValidationError

from evalhub.core.errors import ValidationFailed


def validate_uscc(value: str, field: str = "uscc") -> str:
    """Return the normalised 18-character code, or raise with a message saying what is wrong."""
    code = uscc.compact(value or "").upper()
    try:
        return uscc.validate(code)
    except InvalidLength:
        message = f"统一社会信用代码应为 18 位，当前为 {len(code)} 位。"
    except InvalidChecksum:
        message = "统一社会信用代码校验位错误（GB 32100），请核对。"
    except InvalidFormat:
        message = "统一社会信用代码格式错误：含有不允许的字符或登记管理部门代码无效。"
    except ValidationError:
        message = "统一社会信用代码无效。"
    raise ValidationFailed(message, {field: message})


def compose_uscc(division_code: str, organisation_code: str, *, department: str = "9", kind: str = "1") -> str:
    """Build a valid code from its parts (demo data and tests): registration department (9 = 工商),
    organisation kind (1 = 企业), 6-digit division, 9-character organisation code (last one its own check)."""
    from stdnum.cn import uscc as _uscc

    body = f"{department}{kind}{division_code}{organisation_code}"
    if len(body) != 17:
        raise ValueError("expected 17 characters before the check character")
    return body + _uscc.calc_check_digit(body)


def compose_id_number(division_code: str, birth: str, sequence: int) -> str:
    """A valid resident identity number for demo data and tests (birth as YYYYMMDD)."""
    from stdnum.cn import ric as _ric

    body = f"{division_code}{birth}{sequence:03d}"
    return body + _ric.calc_check_digit(body + "0")  # stdnum computes over the first 17 characters
