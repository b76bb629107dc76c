"""The web role's HTTP routes. Each handler names its route and the action; the pipeline does the rest."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ember.errors import Forbidden
from ember.gateway import fanout, listings
from ember.gateway import routes_table as table
from ember.gateway.pipeline import Call
from ember.gateway.probes import liveness, readiness
from ember.gateway.proxy import RelayResponse
from ember.gateway.services import gateway
from ember.gateway.setup import setup_form, setup_submit

router = APIRouter()


@router.api_route("/", methods=["GET", "HEAD"])
async def root() -> Response:
    return PlainTextResponse("Ember gateway is running")


@router.get("/healthz")
async def healthz() -> Response:
    return liveness()


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    gw = gateway(request)
    return await readiness(gw.database, gw.pool)


@router.get("/setup")
async def setup_page(request: Request) -> Response:
    return await setup_form(request, gateway(request).database)


@router.post("/setup")
async def setup_post(request: Request) -> Response:
    gw = gateway(request)
    return await setup_submit(request, gw.settings, gw.database)


async def _forward(call: Call) -> RelayResponse:
    return await gateway(call.request).pipeline.forward(call)


def _forwarding(route: table.Route):  # type: ignore[no-untyped-def]
    async def handler(request: Request) -> Response:
        return await gateway(request).pipeline.handle(request, route, _forward)

    handler.__name__ = "forward_" + route.path.strip("/").replace("/", "_")
    return handler


for _route in table.FORWARDED.values():
    router.add_api_route(_route.path, _forwarding(_route), methods=["POST"])


@router.api_route("/api/version", methods=["GET", "HEAD"])
async def version(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.VERSION, _forward)


@router.get("/v1/models/{name:path}")
async def model_info(request: Request, name: str) -> Response:
    return await gateway(request).pipeline.handle(request, table.MODEL_INFO, _forward, model=name)


async def _tags(call: Call) -> Response:
    return JSONResponse(await listings.merged_tags(gateway(call.request).pool, call.principal.allows_model))


async def _ps(call: Call) -> Response:
    return JSONResponse(await listings.merged_ps(gateway(call.request).pool, call.principal.allows_model))


async def _models(call: Call) -> Response:
    return JSONResponse(await listings.merged_models(gateway(call.request).pool, call.principal.allows_model))


@router.api_route("/api/tags", methods=["GET", "HEAD"])
async def tags(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.TAGS, _tags)


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PS, _ps)


@router.get("/v1/models")
async def models(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.MODEL_LIST, _models)


async def _fan_out_streams(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=True)


async def _fan_out_once(call: Call) -> Response:
    return await fanout.fan_out(gateway(call.request).pipeline, call, streams=False)


@router.post("/api/pull")
async def pull(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PULL, _fan_out_streams)


@router.post("/api/create")
async def create(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.CREATE, _fan_out_streams)


@router.post("/api/copy")
async def copy(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.COPY, _fan_out_once)


@router.delete("/api/delete")
async def delete(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.DELETE, _fan_out_once)


@router.post("/api/push")
async def push(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.PUSH, _forward)


async def _blob_exists(call: Call) -> Response:
    return await fanout.blob_exists(gateway(call.request).pipeline, call)


async def _upload_blob(call: Call) -> Response:
    return await fanout.upload_blob(gateway(call.request).pipeline, call)


@router.head("/api/blobs/{digest}")
async def blob_exists(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.BLOB, _blob_exists)


@router.post("/api/blobs/{digest}")
async def upload_blob(request: Request) -> Response:
    return await gateway(request).pipeline.handle(request, table.BLOB, _upload_blob)


@router.get("/metrics")
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
