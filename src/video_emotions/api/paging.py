"""The envelope of every paginated list the API answers: items, total, limit, offset, next."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request


def paginated(
    request: Request, items: Sequence[Any], total: int, *, limit: int, offset: int
) -> dict[str, Any]:
    """``next`` is this request's URL for the following page, None on the last one."""
    following = None
    if offset + len(items) < total:
        following = str(request.url.include_query_params(offset=offset + len(items), limit=limit))
    return {"items": list(items), "total": total, "limit": limit, "offset": offset, "next": following}
