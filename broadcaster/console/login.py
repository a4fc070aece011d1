"""Login and logout: the login form, its double-submit CSRF token, rate limit and lockout.

``GET /console/login`` sets a short-lived random cookie and puts the same value in the form;
``POST /console/login`` accepts only a form whose token equals the cookie, counts the attempt
against the client address (:class:`~broadcaster.auth.LoginRateLimiter`, 429 past the limit),
then checks the password (wrong passwords lock the account after ``lockout_after``). A wrong
password, an unknown, disabled or locked account all get the same page, status and (about)
the same time, so the answer does not tell which names exist. Every attempt, good or bad,
goes to the audit log, which does record which it was; the password never does.

``GET/POST /console/password``: an officer changes their own password, giving the current one
(a wrong one counts towards the lockout); every session of theirs ends, this one included.
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.auth import (
    AccountError,
    AccountLockedError,
    CsrfError,
    LoginError,
    LoginRateLimitedError,
)
from broadcaster.auth.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, new_token, require_csrf
from broadcaster.console.web import (
    OFFICER,
    PREFIX,
    SESSION,
    ConsoleState,
    actor_of,
    client_address,
    page,
    state_of,
)

routes = web.RouteTableDef()


def _secure(request: web.Request) -> bool:
    configured = state_of(request).service.config.console.cookie_secure
    if configured is not None:
        return configured
    public_url = state_of(request).service.config.server.public_url or ""
    return public_url.startswith("https://") or request.secure


def _next_path(value: object) -> str:
    """Only a path inside the console: never an open redirect elsewhere."""
    if isinstance(value, str) and value.startswith(PREFIX + "/") and "//" not in value:
        return value
    return PREFIX + "/"


def _login_page(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    token = new_token()
    response = page(
        request,
        "login.html",
        {"login_csrf": token, "message": message, "next": _next_path(request.query.get("next"))},
        status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=1800,
        path=PREFIX + "/login",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    return response


def _wrong_login(request: web.Request) -> str:
    """The answer to every refused login; it says how the lockout works, never who is locked."""
    config = state_of(request).service.config.console
    n, minutes = config.lockout_after, config.lockout_minutes
    return (
        f"用户名或密码错误；连续 {n} 次错误后账户锁定 {minutes:g} 分钟"
        f" · Wrong username or password; {n} wrong in a row lock an account for {minutes:g} min"
    )


UNKNOWN_USER = "(no such officer)"
"""The audit subject of a refused login under a name no officer has: it may be a password
typed in the wrong field, which the audit log must not keep."""


async def _subject(state: ConsoleState, username: str) -> str:
    """``username`` when an officer has it, else :data:`UNKNOWN_USER`."""
    return username if await state.officers.get(username) is not None else UNKNOWN_USER


@routes.get("/login")
async def login_form(request: web.Request) -> web.Response:
    return _login_page(request)


@routes.post("/login")
async def login(request: web.Request) -> web.Response:
    state = state_of(request)
    form = await request.post()
    address = client_address(request)
    username = str(form.get("username", "")).strip().lower()[:64]  # as much goes to the audit
    password = str(form.get("password", ""))
    try:
        require_csrf(str(form.get("csrf_token", "")), request.cookies.get(LOGIN_CSRF_COOKIE))
    except CsrfError as exc:
        subject = await _subject(state, username)
        await state.audit("anonymous", "login.csrf_refused", subject, {"address": address})
        return _login_page(request, str(exc), 403)
    try:
        state.limiter.check(address)
    except LoginRateLimitedError as exc:
        subject = await _subject(state, username)
        await state.audit("anonymous", "login.rate_limited", subject, {"address": address})
        response = _login_page(request, "尝试次数过多，请一分钟后再试 · Too many attempts", 429)
        response.headers["Retry-After"] = str(int(exc.retry_after))
        return response
    try:
        officer = await state.officers.authenticate(username, password)
    except LoginError as exc:
        if isinstance(exc, AccountLockedError):
            detail = {"address": address, "until": exc.until}
            await state.audit("anonymous", "login.locked", username, detail)
        else:
            subject = await _subject(state, username)
            await state.audit("anonymous", "login.failed", subject, {"address": address})
        return _login_page(request, _wrong_login(request), 401)
    cookie, _session = await state.sessions.create(officer.username, address)
    await state.audit(
        f"console:{officer.username}", "login", officer.username, {"address": address}
    )
    response = web.HTTPSeeOther(_next_path(form.get("next")))
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        path=PREFIX + "/",
        httponly=True,
        samesite="Strict",
        secure=_secure(request),
    )
    response.del_cookie(LOGIN_CSRF_COOKIE, path=PREFIX + "/login")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.Response:
    state = state_of(request)
    await state.sessions.end(request[SESSION])
    await state.audit(actor_of(request), "logout", request[SESSION].username)
    response = web.HTTPSeeOther(PREFIX + "/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX + "/")
    raise response


@routes.get("/password")
async def password_form(request: web.Request) -> web.Response:
    return page(request, "password.html", {"error": ""})


@routes.post("/password")
async def change_password(request: web.Request) -> web.Response:
    state = state_of(request)
    officer = request[OFFICER]
    form = await request.post()
    new = str(form.get("new_password", ""))
    if new != str(form.get("new_password_again", "")):
        return page(request, "password.html", {"error": "两次输入不一致 · The two differ"}, 400)
    try:
        await state.officers.authenticate(officer.username, str(form.get("password", "")))
        await state.officers.set_password(officer.username, new)
    except LoginError:
        await state.audit(actor_of(request), "user.password.refused", officer.username)
        error = "当前密码错误 · The current password is wrong"
        return page(request, "password.html", {"error": error}, 403)
    except AccountError as exc:
        return page(request, "password.html", {"error": str(exc)}, 400)
    await state.audit(actor_of(request), "user.password", officer.username, {"by": "self"})
    response = web.HTTPSeeOther(PREFIX + "/login")
    response.del_cookie(SESSION_COOKIE, path=PREFIX + "/")
    raise response
