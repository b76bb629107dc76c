"""Admin: the audit log, newest first, filtered by user, model, status, route and time range, in pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.db.audit import AuditEvent, query_audit
from ember.db.tables import utcnow
from ember.durations import parse_duration
from ember.errors import BadRequest
from ember.web.admin_guard import admin_page, require_admin
from ember.web.services import web

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_OFFSET = 1_000_000  # deep offsets scan the table; a narrower time range is the better tool
MAX_SINCE_SECONDS = 100 * 365 * 86400.0
# Shown in the table; the opt-in prompt and response bodies stay out of the list (they can be large).
LISTED = ("time", "request_id", "user_name", "key_name", "client", "method", "route", "model", "status",
          "prompt_tokens", "completion_tokens", "ttft_ms", "duration_ms", "done_reason", "node", "error")


def event_json(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in LISTED}
    row["time"] = event.time.isoformat()
    return row


async def audit_page(request: Request) -> Response:
    return await admin_page(request, "admin_audit.html", section="audit")


async def query(request: Request) -> Response:
    """GET ?user=&model=&status=&route=&since=&until=&limit=&offset=; since and until are times (ISO 8601) or
    durations back from now (1h). next_offset is where the next (older) page starts, null on the last page;
    until is the end of the range applied (now when not given), for the next pages to reuse."""
    await require_admin(request)
    params, database = request.query_params, web(request).database
    limit, offset = _limit(params.get("limit")), _offset(params.get("offset"))
    # The server's clock ends the range, and the reply names it so a pager can pin it (a browser's clock may be off).
    until = point_in_time(params.get("until"), "until") or utcnow()
    # One extra row tells whether an older page exists without a second count query.
    search = partial(query_audit, database, user=params.get("user") or None, model=params.get("model") or None,
                     status=_status(params.get("status")), route=params.get("route") or None,
                     since=point_in_time(params.get("since")), until=until,
                     limit=limit + 1, offset=offset)
    events = await anyio.to_thread.run_sync(search)
    more = len(events) > limit
    return JSONResponse({"events": [event_json(e) for e in events[:limit]],
                         "next_offset": offset + limit if more else None, "until": until.isoformat()})


def _status(value: str | None) -> int | None:
    if not value:
        return None
    if not value.isdigit() or not 100 <= int(value) <= 599:
        raise BadRequest("status must be an HTTP status code such as 200 or 429")
    return int(value)


def _limit(value: str | None) -> int:
    if not value:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


def _offset(value: str | None) -> int:
    if not value:
        return 0
    if not value.isdigit() or int(value) > MAX_OFFSET:
        raise BadRequest(f"offset must be a whole number from 0 to {MAX_OFFSET}")
    return int(value)


def point_in_time(value: str | None, name: str = "since") -> datetime | None:
    """A point in time: ISO 8601 (UTC when it names no zone), or a duration back from now (15m, 24h, 7d)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    try:
        seconds = parse_duration(value)
    except BadRequest:
        seconds = -1
    if not 0 <= seconds <= MAX_SINCE_SECONDS:  # NaN and "forever" fail this too
        raise BadRequest(f"{name} must be an ISO 8601 time or a duration such as 1h or 7d, got {value[:50]!r}")
    return utcnow() - timedelta(seconds=seconds)
