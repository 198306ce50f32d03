"""Access control and the cross-site guard (chatstream/access.py, views/auth.py)."""

from __future__ import annotations

import re

import pytest

from chatstream import create_app
from chatstream.errors import ConfigError
from tests.conftest import UNIT_CONFIG

PASSWORD = "correct horse battery staple"
TOKEN = "tok-" + "a" * 28
BASE = {**UNIT_CONFIG, "RATE_LIMIT": "off"}
SLOW = {"prompt": "x", "options": {"tokens": 5, "delay_ms": 10_000}}


def make_app(**overrides):
    return create_app({**BASE, **overrides})


@pytest.fixture
def locked():
    """An app with both a shared password and an API token."""
    return make_app(ACCESS_PASSWORD=PASSWORD, API_TOKENS=TOKEN)


@pytest.fixture
def browser(locked):
    return locked.test_client()


def log_in(client, password=PASSWORD, **extra):
    return client.post("/login", data={"password": password, **extra})


def bearer(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def assert_json_error(response, status, code):
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == code
    assert response.json["error"]["message"]


# -- off by default -----------------------------------------------------------


def test_open_by_default_needs_no_credentials_and_has_no_login(client):
    response = client.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 1}})
    assert response.status_code == 202
    assert client.get(response.json["stream_url"]).status_code == 200
    assert client.get("/").status_code == 200
    assert_json_error(client.get("/login"), 404, "not_found")


# -- refusing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("post", "/api/streaming"),
        ("get", "/api/streaming"),
        ("get", "/api/streaming/some-stream-id"),
        ("delete", "/api/streaming/some-stream-id"),
        ("get", "/"),
    ],
)
def test_no_access_is_a_json_401_with_a_bearer_challenge(browser, method, url):
    kwargs = {"json": {"prompt": "x"}} if method == "post" else {}
    response = getattr(browser, method)(url, headers={"Accept": "application/json"}, **kwargs)
    assert_json_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="chatstream"'


def test_a_refused_post_starts_nothing(locked, browser):
    browser.post("/api/streaming", json=SLOW)
    assert locked.extensions["chatstream"].runner.running == {}


def test_a_browser_opening_the_page_is_sent_to_the_login_form(browser):
    response = browser.get("/?a=1", headers={"Accept": "text/html,*/*;q=0.8"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/?a%3D1"


def test_tokens_only_has_no_login_form_and_no_redirect():
    client = make_app(API_TOKENS=TOKEN).test_client()
    assert_json_error(client.get("/", headers={"Accept": "text/html"}), 401, "unauthorized")
    assert client.get("/login").status_code == 404


def test_password_only_sends_no_bearer_challenge():
    client = make_app(ACCESS_PASSWORD=PASSWORD).test_client()
    response = client.post("/api/streaming", json={"prompt": "x"})
    assert_json_error(response, 401, "unauthorized")
    assert "WWW-Authenticate" not in response.headers
    assert "/login" in response.json["error"]["message"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/static/css/login.css"])
def test_probes_metrics_and_assets_stay_open(browser, path):
    with browser.get(path) as response:  # closes the static file
        assert response.status_code == 200


# -- the login form -------------------------------------------------------------


def test_login_form_has_no_inline_script_or_style(browser):
    response = browser.get("/login?next=/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert 'type="password"' in html and 'name="next" value="/"' in html
    assert "<script" not in html and "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_wrong_password_is_refused(browser):
    response = log_in(browser, "wrong")
    assert response.status_code == 401 and "Wrong password" in response.get_data(as_text=True)
    assert_json_error(browser.post("/login", json={"password": "wrong"}), 401, "wrong_password")
    assert_json_error(browser.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")


def test_login_sets_a_hardened_cookie_then_the_api_works(browser):
    response = log_in(browser, next="/")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http: a Secure cookie would never come back
    submitted = browser.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 2}})
    assert submitted.status_code == 202
    stream = browser.get(submitted.json["stream_url"])  # what EventSource does
    assert stream.status_code == 200 and b"event: end" in stream.data
    assert browser.get("/api/streaming").status_code == 200  # the seed's cookie contract
    assert browser.get("/").status_code == 200


def test_json_login_for_scripts(browser):
    assert browser.post("/login", json={"password": PASSWORD}).json == {"status": "ok"}
    assert browser.post("/api/streaming", json={"prompt": "x"}).status_code == 202


def test_cookie_is_secure_over_https(browser):
    response = browser.post("/login", data={"password": PASSWORD}, base_url="https://chat.test")
    assert "Secure" in response.headers["Set-Cookie"]


def test_cookie_is_secure_behind_a_tls_proxy_with_proxy_fix():
    client = make_app(ACCESS_PASSWORD=PASSWORD, PROXY_FIX="1").test_client()
    response = client.post(
        "/login", data={"password": PASSWORD}, headers={"X-Forwarded-Proto": "https"}
    )
    assert response.status_code == 303 and "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"],
)
def test_login_never_redirects_off_site(browser, target):
    assert log_in(browser, next=target).headers["Location"] == "/"


def test_login_page_when_already_logged_in_goes_straight_on(browser):
    log_in(browser)
    response = browser.get("/login?next=/")
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_logout_ends_access(browser):
    log_in(browser)
    assert browser.post("/logout").status_code == 303
    assert_json_error(browser.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")


def test_changing_the_password_logs_everybody_out(locked, browser):
    log_in(browser)
    locked.config["CHATSTREAM_ACCESS_PASSWORD"] = "a new password"
    assert_json_error(browser.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")


def test_a_forged_session_cookie_is_refused(locked):
    other = make_app(ACCESS_PASSWORD=PASSWORD, SECRET_KEY="someone else's key").test_client()
    cookie = log_in(other).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    client = locked.test_client()
    client.set_cookie("chatstream_session", cookie)
    assert_json_error(client.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")


# -- bearer tokens ------------------------------------------------------------------


def test_bearer_token_works_without_any_cookie(browser):
    response = browser.post("/api/streaming", json={"prompt": "x"}, headers=bearer())
    assert response.status_code == 202
    assert browser.get(response.json["stream_url"], headers=bearer()).status_code == 200
    assert browser.delete(response.json["stream_url"], headers=bearer()).status_code == 200


def test_a_wrong_bearer_token_is_refused_even_with_a_good_cookie(browser):
    log_in(browser)
    response = browser.post("/api/streaming", json={"prompt": "x"}, headers=bearer("x" * 32))
    assert_json_error(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_another_authorization_scheme_does_not_hide_the_cookie(browser):
    """A proxy's Basic auth header reaches the app; it is not ours to judge."""
    log_in(browser)
    headers = {"Authorization": "Basic dXNlcjpwYXNz"}
    assert browser.post("/api/streaming", json={"prompt": "x"}, headers=headers).status_code == 202


def test_several_tokens():
    second = "tok-" + "b" * 28
    client = make_app(API_TOKENS=f"{TOKEN}, {second}").test_client()
    for token in (TOKEN, second):
        response = client.post("/api/streaming", json={"prompt": "x"}, headers=bearer(token))
        assert response.status_code == 202


# -- no cross-site writes (always on) ------------------------------------------------


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1"])
def test_cross_origin_post_is_403_even_with_access(browser, origin):
    log_in(browser)
    response = browser.post("/api/streaming", json=SLOW, headers={"Origin": origin})
    assert_json_error(response, 403, "cross_origin")


def test_cross_origin_post_is_403_with_access_control_off(app, client):
    response = client.post("/api/streaming", json=SLOW, headers={"Origin": "http://evil.example"})
    assert_json_error(response, 403, "cross_origin")
    assert app.extensions["chatstream"].runner.running == {}


def test_cross_origin_delete_and_login_are_403(client, browser):
    url = client.post("/api/streaming", json=SLOW).json["stream_url"]
    evil = {"Origin": "http://evil.example"}
    assert_json_error(client.delete(url, headers=evil), 403, "cross_origin")
    assert client.delete(url).json["cancelled"] is True
    assert_json_error(
        browser.post("/login", data={"password": PASSWORD}, headers=evil),
        403,
        "cross_origin",
    )


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("http://localhost", "http://localhost"),
        ("http://localhost", "http://LOCALHOST:80"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://chat.test", "https://chat.test:443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_same_origin_post_is_accepted(client, base_url, origin):
    response = client.post(
        "/api/streaming",
        json={"prompt": "x"},
        headers={"Origin": origin},
        base_url=base_url,
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("base_url", "origin"),
    [
        ("http://localhost", "https://localhost"),  # another scheme is another origin
        ("https://chat.test", "http://chat.test"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8001"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000.evil.example"),
        ("http://127.0.0.1:8000", "http://evil.example@127.0.0.1:8000"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/path"),
        ("http://127.0.0.1:8000", "ftp://127.0.0.1:8000"),
    ],
)
def test_other_origins_are_refused(client, base_url, origin):
    response = client.post(
        "/api/streaming",
        json={"prompt": "x"},
        headers={"Origin": origin},
        base_url=base_url,
    )
    assert_json_error(response, 403, "cross_origin")


def test_origin_is_checked_against_the_host_the_proxy_saw():
    client = make_app(PROXY_FIX="x_for=1,x_proto=1,x_host=1").test_client()
    headers = {
        "Origin": "https://chat.example.com",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "chat.example.com",
    }
    assert client.post("/api/streaming", json={"prompt": "x"}, headers=headers).status_code == 202


def test_no_origin_is_allowed_but_a_cross_site_fetch_without_one_is_not(client):
    """curl and SDKs send no Origin and carry no victim's cookie; browsers send
    Origin on every cross-origin POST, and Sec-Fetch-Site tells the rest."""
    assert client.post("/api/streaming", json={"prompt": "x"}).status_code == 202
    response = client.post(
        "/api/streaming", json={"prompt": "x"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert_json_error(response, 403, "cross_origin")
    same = {"Sec-Fetch-Site": "same-origin"}
    assert client.post("/api/streaming", json={"prompt": "x"}, headers=same).status_code == 202


def test_reads_are_not_origin_checked(client):
    url = client.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 1}}).json[
        "stream_url"
    ]
    assert client.get(url, headers={"Origin": "http://evil.example"}).status_code == 200


# -- JSON only -----------------------------------------------------------------------


def test_post_bodies_must_be_json(client):
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        response = client.post("/api/streaming", data="prompt=hi", content_type=content_type)
        assert_json_error(response, 415, "unsupported_media_type")


def test_delete_body_if_any_must_be_json(client):
    url = client.post("/api/streaming", json=SLOW).json["stream_url"]
    response = client.delete(url, data="reason=x", content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 415, "unsupported_media_type")
    assert client.delete(url, json={}).status_code == 200
    assert client.delete(url).status_code == 200


# -- settings ------------------------------------------------------------------------


def test_secrets_are_read_verbatim_and_never_echoed(monkeypatch):
    monkeypatch.setenv("CHATSTREAM_ACCESS_PASSWORD", "123456")  # JSON would make it a number
    app = create_app(BASE)
    assert app.config["CHATSTREAM_ACCESS_PASSWORD"] == "123456"
    monkeypatch.setenv("CHATSTREAM_API_TOKENS", "short-secret")
    with pytest.raises(ConfigError) as info:
        create_app(BASE)
    assert "CHATSTREAM_API_TOKENS" in info.value.message
    assert "short-secret" not in info.value.message


def test_a_password_that_is_not_valid_unicode_is_a_bad_request(browser):
    # A lone surrogate is not well-formed Unicode: every JSON body refuses it
    # (chatstream.submission.StrictJSONProvider), before any password check.
    response = browser.post(
        "/login", data='{"password": "\\ud800"}', content_type="application/json"
    )
    assert_json_error(response, 400, "invalid_json")


def test_login_redirect_keeps_the_proxy_prefix():
    client = make_app(ACCESS_PASSWORD=PASSWORD, PROXY_FIX="x_prefix=1").test_client()
    response = client.get("/", headers={"Accept": "text/html", "X-Forwarded-Prefix": "/chat"})
    assert response.headers["Location"] == "/chat/login?next=/chat/"


def test_json_login_with_odd_fields_is_a_clean_answer(browser):
    response = browser.post("/login", json={"password": PASSWORD, "next": 5})
    assert response.json == {"status": "ok"}
    for body in ({"password": 5}, ["x"]):
        assert_json_error(browser.post("/login", json=body), 401, "wrong_password")


# -- logout revokes; failed credentials share one budget per address (issue 9, item 7)


def saved_cookie(response):
    return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def test_logout_revokes_a_copy_of_the_cookie_saved_before_it(locked, browser):
    saved = saved_cookie(log_in(browser))
    assert browser.post("/logout").status_code == 303
    thief = locked.test_client()
    thief.set_cookie("chatstream_session", saved)
    assert_json_error(thief.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")
    assert thief.get("/login").status_code == 200  # the form, not "already logged in"
    again = locked.test_client()  # logging in again gives a new, working session
    log_in(again)
    assert (
        again.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 1}}).status_code
        == 202
    )


def test_each_login_is_revoked_alone(locked):
    first, second = locked.test_client(), locked.test_client()
    log_in(first)
    log_in(second)
    first.post("/logout")
    assert (
        second.post("/api/streaming", json={"prompt": "x", "options": {"tokens": 1}}).status_code
        == 202
    )


def test_a_cookie_signed_before_session_ids_is_not_a_login(locked):
    from chatstream.login import LOGIN_MARK_KEY
    from chatstream.login import password_mark

    with locked.app_context():
        settings = locked.extensions["chatstream"].settings
        serializer = locked.extensions["chatstream"].session_interface.get_signing_serializer(
            locked
        )
        # a mark but no id to revoke
        cookie = serializer.dumps({LOGIN_MARK_KEY: password_mark(settings)})
    client = locked.test_client()
    client.set_cookie("chatstream_session", cookie)
    assert_json_error(client.post("/api/streaming", json={"prompt": "x"}), 401, "unauthorized")


def from_address(address):
    return {"environ_base": {"REMOTE_ADDR": address}}


def test_wrong_bearer_tokens_are_limited_per_address():
    app = make_app(ACCESS_PASSWORD=PASSWORD, API_TOKENS=TOKEN, AUTH_FAILURE_LIMIT="3/minute")
    client = app.test_client()
    wrong = bearer("w" * 32)
    codes = [client.get("/api/streaming/some-id", headers=wrong).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    # Over the budget even the right token is refused unread: a 429 tells nothing.
    refused = client.post("/api/streaming", json={"prompt": "x"}, headers=bearer())
    assert_json_error(refused, 429, "too_many_failures")
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    other = client.post("/api/streaming", json=SLOW, headers=bearer(), **from_address("10.0.0.2"))
    assert other.status_code == 202  # another address has its own budget


def test_failed_logins_and_bearer_tokens_share_one_budget():
    app = make_app(ACCESS_PASSWORD=PASSWORD, API_TOKENS=TOKEN, AUTH_FAILURE_LIMIT="3/minute")
    client = app.test_client()
    assert log_in(client, "guess 1").status_code == 401
    assert (
        client.get("/", headers=bearer("w" * 32) | {"Accept": "application/json"}).status_code
        == 401
    )
    assert_json_error(client.post("/login", json={"password": "guess 2"}), 401, "wrong_password")
    assert_json_error(client.post("/login", json={"password": PASSWORD}), 429, "too_many_failures")
    form = log_in(client)  # the form says so in HTML
    assert form.status_code == 429 and "Too many failed" in form.get_data(as_text=True)
    assert int(form.headers["Retry-After"]) >= 1
    assert_json_error(client.get("/api/streaming", headers=bearer()), 429, "too_many_failures")


def test_right_credentials_and_none_at_all_never_count():
    app = make_app(ACCESS_PASSWORD=PASSWORD, API_TOKENS=TOKEN, AUTH_FAILURE_LIMIT="2/minute")
    anonymous, scripted, person = (app.test_client() for _ in range(3))  # one address
    for _ in range(5):
        no_credentials = anonymous.get("/api/streaming/x", headers={"Accept": "application/json"})
        assert no_credentials.status_code == 401
        assert scripted.get("/api/streaming/x", headers=bearer()).status_code == 404
        assert log_in(person).status_code == 303
    assert person.get("/login", headers=bearer("w" * 32)).status_code == 303  # the session


def test_a_bearer_token_on_the_login_form_is_no_oracle(browser):
    # GET /login used to redirect on a right token and show the form on a
    # wrong one: a guess outside the limiter. It looks at the session only.
    assert browser.get("/login", headers=bearer()).status_code == 200


def test_the_failure_limit_can_be_turned_off():
    app = make_app(API_TOKENS=TOKEN, AUTH_FAILURE_LIMIT="off")
    client = app.test_client()
    codes = {client.get("/api/streaming", headers=bearer("w" * 32)).status_code for _ in range(30)}
    assert codes == {401}
