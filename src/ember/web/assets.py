"""The UI's static files, shipped inside the package: served with an ETag and gzip-compressed once.

No Node.js at install or run time: the files under static/ are hand-written or fetched from npm by
scripts/fetch-web-vendor.sh and committed.
"""

from __future__ import annotations

import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import PurePosixPath

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

COMPRESSIBLE = ("text/", "application/javascript", "application/json", "image/svg+xml")


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@cache
def load_asset(path: str) -> Asset | None:
    """The file at ``path`` under static/, or None; names that leave the folder are refused."""
    parts = PurePosixPath(path).parts
    if not parts or any(p in ("..", "") or p.startswith(".") for p in parts):
        return None
    node = resources.files("ember.web").joinpath("static", *parts)
    if not node.is_file():
        return None
    body = node.read_bytes()
    media_type = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type == "application/javascript":
        media_type += "; charset=utf-8"
    gzipped = gzip.compress(body, 9, mtime=0) if media_type.startswith(COMPRESSIBLE) else None
    return Asset(body, gzipped, media_type, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


async def static_file(request: Request) -> Response:
    asset = load_asset(request.path_params["path"])
    if asset is None:
        return PlainTextResponse("not found", status_code=404)
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if asset.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        return Response(asset.gzipped, media_type=asset.media_type, headers={**headers, "Content-Encoding": "gzip"})
    return Response(asset.body, media_type=asset.media_type, headers=headers)
