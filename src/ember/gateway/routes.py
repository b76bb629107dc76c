"""The web role's HTTP routes. Each handler names its route and the action; the pipeline does the rest.

Plain Starlette routing rather than FastAPI's: nothing here uses FastAPI's features, and its per-request
work (route matching with dependency machinery) was a measurable part of the gateway's added latency."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ember.errors import Forbidden
from ember.gateway import fanout, listings
from ember.gateway import routes_table as table
from ember.gateway.pipeline import Action, Call
from ember.gateway.probes import liveness, readiness
from ember.gateway.proxy import RelayResponse
from ember.gateway.services import gateway
from ember.gateway.setup import setup_form, setup_submit


async def root(request: Request) -> Response:
    return PlainTextResponse("Ember gateway is running")


async def healthz(request: Request) -> Response:
    return liveness()


async def readyz(request: Request) -> Response:
    gw = gateway(request)
    return await readiness(gw.database, gw.pool)


async def setup_page(request: Request) -> Response:
    return await setup_form(request, gateway(request).database)


async def setup_post(request: Request) -> Response:
    gw = gateway(request)
    return await setup_submit(request, gw.settings, gw.database)


async def _forward(call: Call) -> RelayResponse:
    return await gateway(call.request).pipeline.forward(call)


def _through(route: table.Route, action: Action) -> Callable[[Request], Awaitable[Response]]:
    """The handler for ``route``: the pipeline (auth, limits, policy, audit) around ``action``."""

    async def handler(request: Request) -> Response:
        return await gateway(request).pipeline.handle(request, route, action)

    handler.__name__ = action.__name__.lstrip("_") + "_" + route.path.strip("/").replace("/", "_")
    return handler


async def model_info(request: Request) -> Response:
    name = request.path_params["name"]
    return await gateway(request).pipeline.handle(request, table.MODEL_INFO, _forward, model=name)


async def _tags(call: Call) -> Response:
    return JSONResponse(await listings.merged_tags(gateway(call.request).pool, call.principal.allows_model))


async def _ps(call: Call) -> Response:
    return JSONResponse(await listings.merged_ps(gateway(call.request).pool, call.principal.allows_model))


async def _models(call: Call) -> Response:
    return JSONResponse(await listings.merged_models(gateway(call.request).pool, call.principal.allows_model))


async def _fan_out_streams(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=True)


async def _fan_out_once(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=False)


async def _blob_exists(call: Call) -> Response:
    return await fanout.blob_exists(gateway(call.request).pipeline, call)


async def _upload_blob(call: Call) -> Response:
    return await fanout.upload_blob(gateway(call.request).pipeline, call)


async def metrics(request: Request) -> Response:
    gw = gateway(request)
    rendered = gw.guards.metrics()
    if rendered is None:
        return PlainTextResponse("404 page not found", status_code=404)
    if not gw.settings.metrics_public:
        principal = await gw.auth.authenticate(request.headers)
        if "admin" not in principal.scopes:
            raise Forbidden("the web role's /metrics needs a key with the admin scope (or EMBER_METRICS_PUBLIC=true)")
    body, content_type = rendered
    return Response(body, media_type=content_type)


def routes() -> list[BaseRoute]:
    forwarded: list[BaseRoute] = [Route(r.path, _through(r, _forward), methods=["POST"])
                                  for r in table.FORWARDED.values()]
    return forwarded + [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/setup", setup_page, methods=["GET"]),
        Route("/setup", setup_post, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/version", _through(table.VERSION, _forward), methods=["GET", "HEAD"]),
        Route("/api/tags", _through(table.TAGS, _tags), methods=["GET", "HEAD"]),
        Route("/api/ps", _through(table.PS, _ps), methods=["GET"]),
        Route("/v1/models", _through(table.MODEL_LIST, _models), methods=["GET"]),
        Route("/v1/models/{name:path}", model_info, methods=["GET"]),
        Route("/api/pull", _through(table.PULL, _fan_out_streams), methods=["POST"]),
        Route("/api/create", _through(table.CREATE, _fan_out_streams), methods=["POST"]),
        Route("/api/copy", _through(table.COPY, _fan_out_once), methods=["POST"]),
        Route("/api/delete", _through(table.DELETE, _fan_out_once), methods=["DELETE"]),
        Route("/api/push", _through(table.PUSH, _forward), methods=["POST"]),
        Route("/api/blobs/{digest}", _through(table.BLOB, _blob_exists), methods=["HEAD"]),
        Route("/api/blobs/{digest}", _through(table.BLOB, _upload_blob), methods=["POST"]),
    ]
