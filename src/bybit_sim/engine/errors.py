"""The one exception the engine raises for a request it refuses: a Bybit retCode + retMsg."""

from __future__ import annotations


class ApiError(Exception):
    """A business error, answered as HTTP 200 with `retCode`/`retMsg` in the envelope."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


def params_error(detail: str) -> ApiError:
    """Bybit's catch-all validation error (10001)."""
    return ApiError(10001, detail)
