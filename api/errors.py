"""The API's errors and how they become JSON: ``{"error": {"code": ..., "message": ...}}``.

ApiError (ScorelineError)
 ├── NotFoundError                 404
 │   ├── BoardNotFoundError        board_not_found
 │   ├── MemberNotFoundError       member_not_found
 │   └── MatchNotFoundError        match_not_found
 ├── LeagueTokenRequiredError      401 league_token_required
 ├── LeagueTokenInvalidError       403 league_token_invalid
 └── StorageUnavailableError       503 storage_unavailable (Postgres does not answer)

Bad query parameters are FastAPI's own 422 (``{"detail": [...]}``), cursors included.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from core.exceptions import ScorelineError


class ApiError(ScorelineError):
    """An error the API answers with its own status and a stable machine-readable code."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class BoardNotFoundError(NotFoundError):
    code = "board_not_found"

    def __init__(self, board_id: str) -> None:
        super().__init__(f"board {board_id!r} does not exist")


class MemberNotFoundError(NotFoundError):
    code = "member_not_found"

    def __init__(self, board_id: str, member_id: str) -> None:
        super().__init__(f"member {member_id!r} is not on board {board_id!r}")


class MatchNotFoundError(NotFoundError):
    code = "match_not_found"

    def __init__(self, match_id: str) -> None:
        super().__init__(f"match {match_id!r} does not exist")


class LeagueTokenRequiredError(ApiError):
    status_code = 401
    code = "league_token_required"

    def __init__(self, board_id: str) -> None:
        super().__init__(f"board {board_id!r} is a private league: send X-League-Token")


class LeagueTokenInvalidError(ApiError):
    status_code = 403
    code = "league_token_invalid"

    def __init__(self, board_id: str) -> None:
        super().__init__(f"the X-League-Token does not open board {board_id!r}")


class StorageUnavailableError(ApiError):
    status_code = 503
    code = "storage_unavailable"


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    headers = {"WWW-Authenticate": "X-League-Token"} if exc.status_code == 401 else None
    body = {"error": {"code": exc.code, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`ApiError` with its status and the JSON error body."""
    app.add_exception_handler(ApiError, _api_error_handler)
