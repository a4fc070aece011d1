"""Admin pages: officers (add, role, enable/disable, unlock, new password), API tokens (issue,
shown once; revoke) and the audit log with its chain check. Admins only; every change is
audited, without the password or token.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from broadcaster.auth import AccountError, Permission
from broadcaster.console.web import PREFIX, actor_of, page, require, state_of

routes = web.RouteTableDef()
_MAX_OFFSET = 10**9


async def _users_page(
    request: web.Request, message: str = "", error: str = "", status: int = 200
) -> web.Response:
    officers = await state_of(request).officers.all()
    now = state_of(request).service.clock()
    return page(
        request,
        "users.html",
        {"officers": officers, "message": message, "error": error, "now": now},
        status,
    )


@routes.get("/users")
async def users(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    return await _users_page(request)


@routes.post("/users")
async def add_user(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    state = state_of(request)
    form = await request.post()
    username = str(form.get("username", "")).strip().lower()
    role = str(form.get("role", ""))
    try:
        await state.officers.create(
            username, str(form.get("password", "")), role, str(form.get("display_name", ""))
        )
    except AccountError as exc:
        return await _users_page(request, error=str(exc), status=400)
    await state.audit(actor_of(request), "user.add", username, {"role": role})
    return await _users_page(request, message=f"已添加 Added {username}")


@routes.post("/users/{username}")
async def change_user(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    state = state_of(request)
    username = request.match_info["username"]
    form = await request.post()
    action = str(form.get("action", ""))
    detail: dict[str, Any] = {}
    try:
        if action == "role":
            detail["role"] = str(form.get("role", ""))
            await state.officers.update(username, role=detail["role"])
        elif action in ("enable", "disable"):
            await state.officers.update(username, enabled=action == "enable")
        elif action == "unlock":
            await state.officers.update(username, unlock=True)
        elif action == "password":
            await state.officers.set_password(username, str(form.get("password", "")))
        else:
            raise AccountError(f"unknown action {action!r}")
    except AccountError as exc:
        return await _users_page(request, error=str(exc), status=400)
    await state.audit(actor_of(request), f"user.{action}", username, detail)
    return await _users_page(request, message=f"已更新 Updated {username}: {action}")


@routes.get("/tokens")
async def tokens(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    grants = await state_of(request).tokens.all()
    return page(request, "tokens.html", {"grants": grants, "new_token": "", "error": ""})


@routes.post("/tokens")
async def create_token(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    state = state_of(request)
    form = await request.post()
    name = str(form.get("name", "")).strip()
    requires_approval = form.get("requires_approval") == "on"
    try:
        token, grant = await state.tokens.create(
            name, created_by=actor_of(request), requires_approval=requires_approval
        )
    except AccountError as exc:
        grants = await state.tokens.all()
        return page(
            request, "tokens.html", {"grants": grants, "new_token": "", "error": str(exc)}, 400
        )
    await state.audit(
        actor_of(request),
        "apitoken.create",
        name,
        {"id": grant.id, "hint": grant.hint, "requires_approval": requires_approval},
    )
    grants = await state.tokens.all()
    return page(request, "tokens.html", {"grants": grants, "new_token": token, "error": ""})


# Store ids are 64-bit integers: a longer number names nothing (404), not a store error.
@routes.post("/tokens/{grant_id:\\d{1,18}}/revoke")
async def revoke_token(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    state = state_of(request)
    try:
        grant = await state.tokens.revoke(int(request.match_info["grant_id"]), by=actor_of(request))
    except AccountError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    await state.audit(actor_of(request), "apitoken.revoke", grant.name, {"id": grant.id})
    raise web.HTTPSeeOther(f"{PREFIX}/tokens")


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    require(request, Permission.ADMIN)
    state = state_of(request)
    audit = state.service.store.audit
    action = request.query.get("action") or None
    actor = request.query.get("actor") or None
    try:
        offset = max(0, int(request.query.get("offset", "0")))
    except ValueError:
        offset = 0
    if offset > _MAX_OFFSET:
        raise web.HTTPBadRequest(text=f"offset is at most {_MAX_OFFSET}")
    entries = await audit.entries(limit=100, offset=offset, action=action, actor=actor)
    report = await audit.verify()
    return page(
        request,
        "audit.html",
        {
            "entries": entries,
            "report": report,
            "action": action or "",
            "actor": actor or "",
            "offset": offset,
        },
    )
