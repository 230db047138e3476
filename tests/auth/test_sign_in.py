"""Browser sign-in: the page, the cookie's flags, wrong keys behind the
per-peer limit, where a sign-in may lead back to, and `?token=` on a page."""

from __future__ import annotations

import re
from dataclasses import replace

from support import PoolFactory

from balancer.config.access_settings import AuthSettings

from .auth_helpers import COOKIE, SECRETS, api_key, keyed_pool, set_cookies, sign_in

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def keys_with(**auth: object) -> dict[str, AuthSettings]:
    keys = (api_key("alice"), api_key("bob"), api_key("root", "admin"))
    return {"auth": AuthSettings(keys=keys, **auth)}  # type: ignore[arg-type]


async def test_the_page_is_self_contained_and_signing_in_sets_the_cookie(
    make_pool: PoolFactory,
) -> None:
    pool = await keyed_pool(make_pool, 1)
    page = await pool.client.get("/balancer/login")
    assert page.status == 200
    text = await page.text()
    assert 'name="key"' in text and 'type="password"' in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no external assets
    assert "<script" not in text
    resp = await pool.client.post(
        "/balancer/login", data={"key": SECRETS["alice"]}, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    header = set_cookies(resp)[COOKIE]
    flags = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path", "samesite", "max-age"} <= flags
    assert "secure" not in flags  # plain HTTP, no trusted proxy
    assert "SameSite=Lax" in header and "Path=/" in header and "Max-Age=43200" in header
    assert SECRETS["alice"] not in header and "alice" in header  # names the key, never holds it


async def test_secure_over_https_from_a_trusted_proxy_only(make_pool: PoolFactory) -> None:
    https = {"X-Forwarded-Proto": "https"}
    untrusted = await keyed_pool(make_pool, 1)
    resp = await untrusted.client.post(
        "/balancer/login", data={"key": SECRETS["bob"]}, headers=https, allow_redirects=False
    )
    assert "Secure" not in set_cookies(resp)[COOKIE]
    proxied = await make_pool(1, settings_overrides=keys_with(trusted_proxies=("127.0.0.0/8",)))
    resp = await proxied.client.post(
        "/balancer/login", data={"key": SECRETS["bob"]}, headers=https, allow_redirects=False
    )
    assert "Secure" in set_cookies(resp)[COOKIE]


async def test_a_wrong_key_is_the_page_with_one_error_line_then_the_peer_waits(
    make_pool: PoolFactory,
) -> None:
    pool = await keyed_pool(make_pool, 1)
    wrong = {"key": "guess", "next": "/balancer"}
    for _ in range(10):
        resp = await pool.client.post("/balancer/login", data=wrong, allow_redirects=False)
        assert resp.status == 401
        text = await resp.text()
        assert text.count('class="error"') == 1 and "not valid" in text
        assert 'value="/balancer"' in text  # the way back survives the retry
        assert COOKIE not in set_cookies(resp)
    limited = await pool.client.post(
        "/balancer/login", data={"key": SECRETS["alice"]}, allow_redirects=False
    )
    assert limited.status == 429  # even the right key waits: the peer's attempts are spent
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await limited.text()).count('class="error"') == 1
    assert COOKIE not in set_cookies(limited)
    pool.clock.advance(6.0)
    assert await sign_in(pool, "alice")


async def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(
    make_pool: PoolFactory,
) -> None:
    pool = await make_pool(1, settings_overrides=keys_with(trusted_proxies=("127.0.0.1",)))
    for _ in range(11):
        resp = await pool.client.post(
            "/balancer/login",
            data={"key": "guess"},
            headers={"X-Forwarded-For": "203.0.113.7"},
            allow_redirects=False,
        )
    assert resp.status == 429
    other = await pool.client.post(
        "/balancer/login",
        data={"key": SECRETS["bob"]},
        headers={"X-Forwarded-For": "198.51.100.2"},
        allow_redirects=False,
    )
    assert other.status == 303


async def test_next_leads_back_to_same_site_paths_only(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    cases = {
        "https://evil.example": "/",
        "//evil.example/x": "/",
        "/\\evil.example": "/",
        "javascript:alert(1)": "/",
        "/balancer?view=1": "/balancer?view=1",
        "/api/view?filename=a.png&type=output": "/api/view?filename=a.png&type=output",
    }
    for given, expected in cases.items():
        resp = await pool.client.post(
            "/balancer/login",
            data={"key": SECRETS["alice"], "next": given},
            allow_redirects=False,
        )
        assert resp.headers["Location"] == expected, given
        pool.client.session.cookie_jar.clear()
    page = await (await pool.client.get("/balancer/login?next=https://evil.example")).text()
    assert "evil.example" not in page


async def test_pages_lead_to_sign_in_and_api_clients_get_401(make_pool: PoolFactory) -> None:
    pool = await keyed_pool(make_pool, 1)
    page = await pool.client.get("/?x=1", headers=HTML, allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/balancer/login?next=%2F%3Fx%3D1"
    api = await pool.client.get("/api/queue", allow_redirects=False)
    assert api.status == 401
    assert (await api.json())["error"]["type"] == "unauthorized"
    post = await pool.client.post("/api/prompt", json={}, headers=HTML, allow_redirects=False)
    assert post.status == 401  # only page loads are redirected


async def test_token_on_a_page_url_signs_in_and_leaves_the_address_bar(
    make_pool: PoolFactory,
) -> None:
    pool = await keyed_pool(make_pool, 1)
    resp = await pool.client.get(
        "/?token=alice-secret&workflow=a", headers=HTML, allow_redirects=False
    )
    assert resp.status == 303
    assert resp.headers["Location"] == "/?workflow=a"
    assert COOKIE in set_cookies(resp)
    pool.client.session.cookie_jar.clear()
    wrong = await pool.client.get("/?token=nope&workflow=a", headers=HTML, allow_redirects=False)
    assert wrong.headers["Location"] == "/balancer/login?next=%2F%3Fworkflow%3Da"
    assert COOKIE not in set_cookies(wrong)
    img = await pool.client.get("/queue?token=alice-secret", allow_redirects=False)
    assert img.status == 200  # not a page: the token is a key as before, no redirect


async def test_the_status_page_signs_in_the_same_way(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, settings_overrides=keys_with(public_status=False))
    resp = await pool.client.get("/balancer", headers=HTML, allow_redirects=False)
    assert resp.headers["Location"] == "/balancer/login?next=%2Fbalancer"
    assert (await pool.client.get("/balancer/status", allow_redirects=False)).status == 401
    value = await sign_in(pool, "bob", next="/balancer")
    jar = {"Cookie": f"{COOKIE}={value}"}
    assert (await pool.client.get("/balancer", headers={**HTML, **jar})).status == 200
    assert (await pool.client.get("/balancer/status", headers=jar)).status == 200
    public = await make_pool(1, settings_overrides=keys_with())
    assert (await public.client.get("/balancer", headers=HTML)).status == 200


async def test_without_keys_there_is_nothing_to_sign_in_to(make_pool: PoolFactory) -> None:
    pool = await make_pool(1, settings_overrides={"auth": replace(AuthSettings())})
    resp = await pool.client.get("/balancer/login?next=/queue", allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/queue"
    assert (await pool.client.get("/", headers=HTML, allow_redirects=False)).status == 200
