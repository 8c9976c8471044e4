"""The OpenAPI 3.1 document, generated from the route table and its msgspec types, and the
interactive docs page (Swagger UI, served from the ``swagger-ui-py`` package: no CDN)."""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web

from gateway.route import Route

_REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{([^}/]+)\}")
# statuses any API route can answer, whatever it does
_COMMON = {
    400: "The query or body is malformed.",
    413: "The body is too large.",
    429: "Rate limited; see Retry-After.",
    503: "Storage is unavailable; retry later.",
}
_AUTHED = {
    401: "No token, or an expired, unknown or revoked one.",
    403: "The caller's role or token scope does not allow this.",
}
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    404: "No such record (or not visible to the caller).",
    409: "Conflicts with the current state.",
    415: "The body is not application/json.",
    422: "The body does not match the schema.",
}


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    details: Any = None


class ErrorBody(msgspec.Struct):
    """Every error the API answers."""

    error: ErrorDetail


def _parameters(spec: Route, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(spec.path)
    ]
    if spec.query is not None:
        query_schema = schemas[spec.query.__name__]
        required = set(query_schema.get("required", ()))
        for name, schema in query_schema["properties"].items():
            schema = dict(schema)
            description = schema.pop("description", None)
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": schema,
            }
            if description:
                param["description"] = description
            params.append(param)
    return params


def _responses(spec: Route, reply_schema: dict[str, Any] | None) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}}
    answers: dict[str, Any] = {}
    ok: dict[str, Any] = {"description": _STATUS_TEXT.get(spec.status, "OK")}
    if reply_schema is not None and spec.status != 204:
        ok["content"] = {"application/json": {"schema": reply_schema}}
    if spec.csv:
        ok.setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
        if reply_schema is None:  # streamed: JSON without a fixed schema, or CSV
            ok["content"]["application/json"] = {"schema": {}}
    if spec.file:
        ok["content"] = {spec.file: {"schema": {"type": "string", "format": "binary"}}}
    answers[str(spec.status)] = ok
    if spec.replays:
        answers["200"] = {**ok, "description": "Already done with this idempotency key."}
    statuses = dict(_COMMON)
    if spec.permission is not None:
        statuses.update(_AUTHED)
    if spec.body is not None or spec.upload:
        statuses[415] = _STATUS_TEXT[415]
        statuses[422] = _STATUS_TEXT[422]
    if "{" in spec.path:
        statuses[404] = _STATUS_TEXT[404]
    for status in spec.errors:
        statuses[status] = _STATUS_TEXT.get(status, "Refused.")
    for status, text in sorted(statuses.items()):
        answers[str(status)] = {"description": text, "content": error}
    return answers


def build_document(
    routes: Sequence[Route], version: str, channels: Sequence[str] = ()
) -> dict[str, Any]:
    """``channels``: the registered channel ids, listed as the ``channel`` of a new inbox (the
    registry is handed over at start, so the body type cannot name them itself)."""
    types: list[Any] = [ErrorBody]
    for spec in routes:
        types.extend(t for t in (spec.query, spec.body, spec.form) if t is not None)
        if spec.reply is not None:
            types.append(spec.reply)
    refs, schemas = msgspec.json.schema_components(types, ref_template=_REF)
    if channels and "InboxCreate" in schemas:
        schemas["InboxCreate"]["properties"]["channel"]["enum"] = sorted(channels)
    reply_refs = iter(refs[1:])
    paths: dict[str, dict[str, Any]] = {}
    for spec in routes:
        query_ref = next(reply_refs) if spec.query is not None else None
        body_ref = next(reply_refs) if spec.body is not None else None
        form_ref = next(reply_refs) if spec.form is not None else None
        reply_ref = next(reply_refs) if spec.reply is not None else None
        del query_ref, form_ref
        operation: dict[str, Any] = {
            "operationId": spec.handler.__name__,
            "summary": spec.summary,
            "tags": [spec.tag],
            "parameters": _parameters(spec, schemas),
            "responses": _responses(spec, reply_ref),
        }
        if spec.handler.__doc__:
            operation["description"] = " ".join(spec.handler.__doc__.split())
        if spec.permission is None:
            operation["security"] = []
        else:
            operation["x-permission"] = spec.permission.value
        if body_ref is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_ref}},
            }
        elif spec.upload:
            fields: dict[str, Any] = {}
            if spec.form is not None:
                fields = dict(schemas[spec.form.__name__]["properties"])
            fields["file"] = {"type": "string", "format": "binary"}
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {"type": "object", "properties": fields, "required": ["file"]}
                    }
                },
            }
        paths.setdefault(spec.path, {})[spec.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hub admin REST API",
            "version": version,
            "description": "Accounts, agents, teams, inboxes, contacts, conversations and "
            "messages. Log in at /api/v1/auth/login for an access token, or use a personal "
            "API token; send it as `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Hub API</title>
<link rel="stylesheet" href="/api/v1/docs/static/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/api/v1/docs/static/swagger-ui-bundle.js"></script>
<script src="/api/v1/docs/init.js"></script></body></html>
"""
# a file, not an inline script, so the page works under the API's Content-Security-Policy
_DOCS_INIT = """window.ui = SwaggerUIBundle({url: "/api/v1/openapi.json", dom_id: "#docs",
  deepLinking: true, persistAuthorization: true});
"""


def mount_docs(app: web.Application, document: dict[str, Any]) -> None:
    body = msgspec.json.encode(document)

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def docs(_: web.Request) -> web.Response:
        return web.Response(text=_DOCS_PAGE, content_type="text/html")

    async def init(_: web.Request) -> web.Response:
        return web.Response(text=_DOCS_INIT, content_type="application/javascript")

    app.router.add_get("/api/v1/openapi.json", openapi)
    app.router.add_get("/api/v1/docs", docs)
    app.router.add_get("/api/v1/docs/init.js", init)
    static = importlib.resources.files("swagger_ui") / "static"
    app.router.add_static("/api/v1/docs/static", str(static))
