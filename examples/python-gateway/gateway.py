"""An LLM API gateway guarded by nanu: every request's key is verified in-process, and its real
usage is charged after the upstream answered.

- `/v1/*`: the middleware reads `Authorization: Bearer <key>`, the requested `model` (JSON
  body) and the client address, and verifies them. A denial answers 401, 403 or 429 (with
  `Retry-After`) by the verdict's code. An allowed request may reserve its `max_tokens` (and
  their cost) as a hold, is forwarded to the upstream over HTTP, and the usage the upstream
  reports is charged with the request's id, settling the hold. A failed upstream call gives
  the hold back.
- `/admin/*`: mint and revoke keys and read usage, guarded by a separate admin token.

Configuration (environment): `NANU_VAULT` (path of an existing vault), `NANU_PASSPHRASE`,
`NANU_DURABILITY` (default `durable`), `NANU_CONCURRENCY` (`exclusive`, the default: one
process; `shared`: several workers on the same vault file), `UPSTREAM_URL` (e.g.
`http://127.0.0.1:9001`), `NANU_ADMIN_TOKEN`.

    uvicorn --factory gateway:app_from_environment --host 127.0.0.1 --port 8000
    NANU_CONCURRENCY=shared uvicorn --factory gateway:app_from_environment --workers 4 ...
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import nanu

log = logging.getLogger("gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1 << 20


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": {"code": code, "message": message}}, status, headers=headers)


def bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = bytes(value).decode("latin-1")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def hold_for(vault: nanu.Vault, model: str | None, max_tokens: object) -> dict[str, int]:
    """What to reserve for a request: its `max_tokens` and their cost at the model's price."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
        return {}
    hold = {"output_tokens": max_tokens}
    price = vault.price(model) if model else None
    if price is not None:
        scaled = max_tokens * price.output_per_mtok
        hold["cost"] = price.per_request + -(-scaled // 1_000_000)
    return hold


class KeyAuth:
    """ASGI middleware: verifies the API key of every `/v1/` request, or answers the denial.

    The allowed verdict goes to the route as `request.state.verdict`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        vault: nanu.Vault = scope["app"].state.vault

        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await error(413, "too_large", "the request body is too large")(scope, receive,
                                                                                 send)
                return
            if not message.get("more_body", False):
                break
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            await error(400, "bad_request", "the body must be a JSON object")(scope, receive, send)
            return
        model = payload.get("model")
        if model is not None and not isinstance(model, str):
            await error(400, "bad_request", "model must be a string")(scope, receive, send)
            return

        secret = bearer(scope)
        if secret is None:
            headers = {"WWW-Authenticate": "Bearer"}
            response = error(401, "missing_key", "send Authorization: Bearer <key>", headers)
            await response(scope, receive, send)
            return
        client = scope.get("client")
        verdict = vault.verify(
            secret,
            model=model,
            ip=client[0] if client else None,
            hold=hold_for(vault, model, payload.get("max_tokens")) or None,
        )
        if not verdict.allowed:
            headers = {}
            if verdict.http_status == 401:
                headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            if verdict.http_status == 429:
                # Whole seconds, rounded up; at least 1 even when no limit says when.
                ms = verdict.retry_after_ms
                headers["Retry-After"] = str(max(1, -(-ms // 1000)) if ms is not None else 1)
            response = error(verdict.http_status, verdict.code, f"denied: {verdict.code}",
                             headers)
            await response(scope, receive, send)
            return

        scope.setdefault("state", {})["verdict"] = verdict
        scope["state"]["payload"] = payload
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def chat_completions(request: Request) -> Response:
    vault: nanu.Vault = request.app.state.vault
    upstream: httpx.AsyncClient = request.app.state.upstream
    verdict: nanu.Verdict = request.state.verdict
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    assert verdict.key_id is not None

    try:
        answer = await upstream.post("/v1/chat/completions", json=request.state.payload)
        answer.raise_for_status()
        usage = answer.json()["usage"]
        input_tokens, output_tokens = usage["prompt_tokens"], usage["completion_tokens"]
    except (httpx.HTTPError, KeyError, ValueError) as err:
        if verdict.hold_id is not None:
            vault.release(verdict.hold_id)
        log.warning("upstream failed for %s: %s", verdict.key_id, err)
        return error(502, "upstream_failed", "the model provider failed; nothing was charged")

    # A durable charge waits for its commit (an fsync): keep it off the event loop.
    try:
        outcome = await run_in_threadpool(
            vault.charge,
            verdict.key_id,
            model=verdict.model,
            endpoint="/v1/chat/completions",
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            request_id=request_id,
            hold_id=verdict.hold_id,
        )
    except nanu.Conflict:
        # The client reused a request id for a request that used other amounts: the first
        # charge stands, this one is not recorded.
        if verdict.hold_id is not None:
            vault.release(verdict.hold_id)
        return error(409, "conflict", f"request id {request_id!r} was already charged")
    headers = {
        "X-Request-Id": request_id,
        "X-Nanu-Key": verdict.key_id,
        "X-Nanu-Cost": str(outcome.cost),
        # Which worker process answered, when several share the vault.
        "X-Gateway-Worker": str(os.getpid()),
    }
    return Response(answer.content, 200, headers=headers, media_type="application/json")


Handler = Callable[[Request], Awaitable[Response]]


def admin(handler: Handler) -> Handler:
    """Guards an admin route with the admin token; vault errors become 4xx answers."""

    async def guarded(request: Request) -> Response:
        token = request.app.state.admin_token
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            return error(401, "admin_only", "send the admin token")
        try:
            return await handler(request)
        except nanu.Error as err:
            status = {"not_found": 404, "invalid_argument": 400, "conflict": 409}.get(err.code,
                                                                                        500)
            return error(status, err.code, err.message)

    return guarded


@admin
async def mint_key(request: Request) -> Response:
    spec = await request.json()
    if not isinstance(spec, dict) or "owner" not in spec:
        return error(400, "bad_request", "send a key spec with an owner")
    if isinstance(spec.get("expires_at"), str):
        spec["expires_at"] = datetime.fromisoformat(spec["expires_at"].replace("Z", "+00:00"))
    try:
        minted = await run_in_threadpool(
            lambda: request.app.state.vault.mint(**spec, actor="admin")
        )
    except TypeError as err:
        return error(400, "bad_request", str(err))
    return JSONResponse({"key_id": minted.key_id, "secret": minted.secret}, 201)


@admin
async def revoke_key(request: Request) -> Response:
    body = await request.json()
    key_id = body.get("key_id") if isinstance(body, dict) else None
    if not isinstance(key_id, str):
        return error(400, "bad_request", "send {\"key_id\": ...}")
    await run_in_threadpool(request.app.state.vault.revoke, key_id, actor="admin")
    return JSONResponse({"revoked": key_id})


@admin
async def usage_report(request: Request) -> Response:
    group_by = [g for g in request.query_params.get("group_by", "").split(",") if g]
    rows = await run_in_threadpool(request.app.state.vault.usage, group_by=group_by)
    return JSONResponse([
        {"group": r.group, "requests": r.requests, "denied": r.denied,
         "input_tokens": r.input_tokens, "output_tokens": r.output_tokens, "cost": r.cost}
        for r in rows
    ])


@admin
async def remaining(request: Request) -> Response:
    r = request.app.state.vault.remaining(request.path_params["key_id"])
    return JSONResponse({"requests": r.requests, "tokens": r.tokens, "cost": r.cost})


@admin
async def alerts(request: Request) -> Response:
    return JSONResponse(list(request.app.state.alerts))


def create_app(
    vault_path: str,
    passphrase: str,
    upstream_url: str,
    admin_token: str,
    durability: nanu.Durability = "durable",
    concurrency: nanu.Concurrency = "exclusive",
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Each worker process opens the vault itself, after the server started it: with
        # `shared`, every worker's handle takes part in the same limits.
        vault = await run_in_threadpool(
            lambda: nanu.Vault.open(
                vault_path, passphrase=passphrase, durability=durability,
                concurrency=concurrency,
            )
        )
        app.state.alerts = []

        def on_event(event: nanu.Event) -> None:
            # Runs on the vault's commit thread: record and return, nothing slow. Each worker
            # records the events of its own commits.
            if event.kind in ("threshold", "exhausted", "revoked"):
                app.state.alerts.append(
                    {"kind": event.kind, "key_id": event.key_id, "percent": event.percent}
                )
                log.info("alert: %s %s %s", event.kind, event.key_id, event.percent or "")

        vault.subscribe(on_event)
        app.state.vault = vault
        app.state.admin_token = admin_token
        async with httpx.AsyncClient(base_url=upstream_url, timeout=30) as client:
            app.state.upstream = client
            try:
                yield
            finally:
                await run_in_threadpool(vault.close)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/admin/keys", mint_key, methods=["POST"]),
            Route("/admin/revoke", revoke_key, methods=["POST"]),
            Route("/admin/usage", usage_report, methods=["GET"]),
            Route("/admin/keys/{key_id}/remaining", remaining, methods=["GET"]),
            Route("/admin/alerts", alerts, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.add_middleware(KeyAuth)
    return app


def app_from_environment() -> Starlette:
    return create_app(
        vault_path=os.environ["NANU_VAULT"],
        passphrase=os.environ["NANU_PASSPHRASE"],
        upstream_url=os.environ["UPSTREAM_URL"],
        admin_token=os.environ.get("NANU_ADMIN_TOKEN", ""),
        durability=os.environ.get("NANU_DURABILITY", "durable"),  # type: ignore[arg-type]
        concurrency=os.environ.get("NANU_CONCURRENCY", "exclusive"),  # type: ignore[arg-type]
    )

