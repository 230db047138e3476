"""GET/POST /balancer/login and POST /balancer/logout: a browser trades an
API key for a session cookie once, then the web UI works as without keys.

Attempts are limited per peer (behind trusted proxies, per client address):
a burst of SIGN_IN_BURST, then one every 1 / SIGN_IN_RATE seconds.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template

from aiohttp import web

from balancer.auth.access import Access, access_of
from balancer.auth.browser import (
    LOGIN_PATH,
    LOGOUT_PATH,
    clear_session,
    client_address,
    is_https,
    redirect,
    safe_next,
    set_session,
)
from balancer.auth.limits import retry_after
from balancer.auth.sessions import COOKIE
from balancer.logs import get_logger

log = get_logger("balancer.auth")

PAGE = Template(files("balancer.auth").joinpath("login.html").read_text(encoding="utf-8"))
SIGN_IN_BURST = 10.0
SIGN_IN_RATE = 1 / 6  # attempts per second once the burst is spent
SIGNED_IN_AS = (
    '<form class="who" method="post" action="/balancer/logout">Signed in as <b>{name}</b>'
    '<button type="submit">Sign out</button></form>'
)


def page(
    access: Access, request: web.Request, target: str, error: str = "", status: int = 200
) -> web.Response:
    """The sign-in page; `error` is its one error line."""
    session = request.cookies.get(COOKIE)
    key = access.sessions.verify(session, access.keyring()) if session else None
    text = PAGE.substitute(
        next=escape(target),
        error=f'<p class="error" role="alert">{escape(error)}</p>' if error else "",
        who=SIGNED_IN_AS.format(name=escape(key.name)) if key else "",
    )
    return web.Response(
        text=text, status=status, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


async def get_login(request: web.Request) -> web.StreamResponse:
    access = access_of(request)
    target = safe_next(request.query.get("next"))
    if not access.keyring():
        return redirect(target)  # no keys: nothing to sign in to
    return page(access, request, target)


async def post_login(request: web.Request) -> web.StreamResponse:
    access = access_of(request)
    form = await request.post()
    target = safe_next(form.get("next"))
    ring = access.keyring()
    if not ring:
        return redirect(target)
    proxies = access.settings().auth.trusted_proxies
    peer = client_address(request, proxies)
    wait = access.sign_ins.spend(f"peer:{peer}", SIGN_IN_RATE, SIGN_IN_BURST)
    if wait is not None:
        log.warning("sign_in_limited", peer=peer)
        message = f"Too many attempts: try again in {retry_after(wait)} s."
        refused = page(access, request, target, message, 429)
        refused.headers["Retry-After"] = retry_after(wait)
        return refused
    given = form.get("key")
    key = ring.match(given) if isinstance(given, str) and given else None
    if key is None:
        log.info("sign_in_refused", peer=peer)
        return page(access, request, target, "That API key is not valid.", 401)
    log.info("signed_in", key=key.name, peer=peer)
    response = redirect(target)
    set_session(response, access.sessions.issue(key), is_https(request, proxies))
    return response


async def post_logout(request: web.Request) -> web.StreamResponse:
    access = access_of(request)
    session = request.cookies.get(COOKIE)
    if session:
        access.sessions.revoke(session, access.keyring())
        log.info("signed_out", peer=request.remote)
    response = redirect(LOGIN_PATH)
    clear_session(response, is_https(request, access.settings().auth.trusted_proxies))
    return response


def add_sign_in_routes(router: web.UrlDispatcher) -> None:
    router.add_get(LOGIN_PATH, get_login)
    router.add_post(LOGIN_PATH, post_login)
    router.add_post(LOGOUT_PATH, post_logout)
