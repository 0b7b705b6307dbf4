"""The server's errors: every rejection is a 4xx with one JSON shape, OpenAI's.

``{"error": {"message": "...", "type": "invalid_request_error", "code": "image_too_large", "param": null}}``

A client (the ``openai`` package raises ``BadRequestError``, ``AuthenticationError``... from it) can tell
what went wrong from ``code`` without parsing the message. Errors are raised as :class:`ServeError` anywhere
in the request path and turned into a response in one place (the app's exception handler); the server keeps
serving.
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ServeError(Exception):
    """A request the server refuses: HTTP ``status``, a stable machine-readable ``code``, a clear message.

    Codes: ``invalid_json``, ``invalid_request``, ``invalid_image``, ``image_url_not_allowed``,
    ``image_fetch_failed``, ``invalid_stream_id``, ``stream_not_found``, ``too_many_streams``,
    ``image_too_large``, ``too_many_images``, ``request_too_large``, ``invalid_api_key``, ``not_found``,
    ``method_not_allowed``, ``internal_error``.
    """

    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.code, self.message, self.param)


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """The JSON of an error response."""
    kind = _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": param}}


__all__ = ["ServeError", "error_body"]
