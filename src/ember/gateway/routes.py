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
from ember.gateway.pipeline import Call
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


def _forwarding(route: table.Route) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return await gateway(request).pipeline.handle(request, route, _forward)

    handler.__name__ = "forward_" + route.path.strip("/").replace("/", "_")
    return handler




async def version(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.VERSION, _forward)


async def model_info(request: Request) -> Response:
    name = request.path_params["name"]
    return await gateway(request).pipeline.handle(request, table.MODEL_INFO, _forward, model=name)


async def _tags(call: Call) -> Response:
    return JSONResponse(await listings.merged_tags(gateway(call.request).pool, call.principal.allows_model))


async def _ps(call: Call) -> Response:
    return JSONResponse(await listings.merged_ps(gateway(call.request).pool, call.principal.allows_model))


async def _models(call: Call) -> Response:
    return JSONResponse(await listings.merged_models(gateway(call.request).pool, call.principal.allows_model))


async def tags(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.TAGS, _tags)


async def ps(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PS, _ps)


async def models(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.MODEL_LIST, _models)


async def _fan_out_streams(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=True)


async def _fan_out_once(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=False)


async def pull(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PULL, _fan_out_streams)


async def create(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.CREATE, _fan_out_streams)


async def copy(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.COPY, _fan_out_once)


async def delete(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.DELETE, _fan_out_once)


async def push(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PUSH, _forward)


async def _blob_exists(call: Call) -> Response:
    return await fanout.blob_exists(gateway(call.request).pipeline, call)


async def _upload_blob(call: Call) -> Response:
    return await fanout.upload_blob(gateway(call.request).pipeline, call)


async def blob_exists(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.BLOB, _blob_exists)


async def upload_blob(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.BLOB, _upload_blob)


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
    forwarded: list[BaseRoute] = [Route(r.path, _forwarding(r), methods=["POST"]) for r in table.FORWARDED.values()]
    return forwarded + [
        Route("/", root, methods=["GET", "HEAD"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/setup", setup_page, methods=["GET"]),
        Route("/setup", setup_post, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/version", version, methods=["GET", "HEAD"]),
        Route("/api/tags", tags, methods=["GET", "HEAD"]),
        Route("/api/ps", ps, methods=["GET"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{name:path}", model_info, methods=["GET"]),
        Route("/api/pull", pull, methods=["POST"]),
        Route("/api/create", create, methods=["POST"]),
        Route("/api/copy", copy, methods=["POST"]),
        Route("/api/delete", delete, methods=["DELETE"]),
        Route("/api/push", push, methods=["POST"]),
        Route("/api/blobs/{digest}", blob_exists, methods=["HEAD"]),
        Route("/api/blobs/{digest}", upload_blob, methods=["POST"]),
    ]
