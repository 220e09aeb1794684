"""Domain errors raised by services; views and the API turn them into 4xx answers."""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"

    @classmethod
    def raise_if(cls, errors: dict[str, str]) -> None:
        """Refuse once, naming every problem found (each message beside its field), when there is any."""
        if errors:
            raise cls("；".join(v.rstrip("。") for v in errors.values()) + "。", errors)


class PermissionDenied(DomainError):
    status = 403
    code = "forbidden"

    def __init__(self, message: str = "您没有权限执行此操作。", fields=None) -> None:
        super().__init__(message, fields)


class NotFound(DomainError):
    status = 404
    code = "not_found"

    def __init__(self, message: str = "未找到该记录。", fields=None) -> None:
        super().__init__(message, fields)


class Conflict(DomainError):
    """The request is well-formed but the object's current state does not allow it."""

    status = 409
    code = "conflict"
