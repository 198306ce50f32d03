"""Request bodies: strict JSON for every body (chatstream/submission.py, errors.py)."""

from __future__ import annotations

import pytest

from chatstream import create_app
from chatstream.errors import error_response
from chatstream.submission import MAX_JSON_DEPTH
from tests.conftest import UNIT_CONFIG

PASSWORD = "a long shared passphrase"


@pytest.fixture
def locked():
    return create_app({**UNIT_CONFIG, "RATE_LIMIT": "off", "ACCESS_PASSWORD": PASSWORD})


def post_json(client, path, text):
    return client.post(path, data=text, content_type="application/json")


def assert_invalid_json(response):
    assert response.status_code == 400, response.data
    assert response.json["error"]["code"] == "invalid_json"
    assert response.json["error"]["message"]


def nested(levels):
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1000, 1100])
def test_deep_nesting_is_a_400_on_prompts_and_login(client, locked, levels):
    assert_invalid_json(post_json(client, "/api/streaming", '{"options": ' + nested(levels) + "}"))
    assert_invalid_json(post_json(client, "/api/streaming", nested(levels)))
    assert_invalid_json(post_json(locked.test_client(), "/login", nested(levels)))


def test_nesting_up_to_the_limit_is_judged_by_shape(client):
    response = post_json(client, "/api/streaming", nested(MAX_JSON_DEPTH))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_shape"


@pytest.mark.parametrize(
    "body",
    [
        '{"\\ud800": 1}',
        '{"prompt": "a\\ud800"}',
        '{"prompt": "\\udc00b"}',
        '{"messages": [{"role": "user", "content": "\\ud800"}]}',
        '{"prompt": "hi", "options": {"\\udfff": 1}}',
    ],
)
def test_lone_surrogates_are_refused_at_post(app, client, body):
    assert_invalid_json(post_json(client, "/api/streaming", body))
    assert not app.extensions["chatstream"].runner.running


def test_a_surrogate_pair_is_a_character(client):
    response = post_json(client, "/api/streaming", '{"prompt": "\\ud83d\\ude00"}')
    assert response.status_code == 202


def test_login_with_a_lone_surrogate_is_a_400(locked):
    response = post_json(locked.test_client(), "/login", '{"password": "\\ud800"}')
    assert_invalid_json(response)


@pytest.mark.parametrize("body", ["NaN", '{"prompt": "x", "options": {"tokens": Infinity}}'])
def test_non_standard_json_is_refused(client, body):
    assert_invalid_json(post_json(client, "/api/streaming", body))


def test_an_error_message_with_a_surrogate_still_renders(app):
    with app.test_request_context():
        response = error_response(400, "bad_request", "field \ud800 is odd")
    assert response.status_code == 400
    assert b"\\ud800" in response.get_data()


def test_the_session_cookie_still_decodes(client):
    # Flask's session serializer calls the JSON provider with hooks: stdlib path.
    assert post_json(client, "/api/streaming", '{"prompt": "hi"}').status_code == 202
    response = client.get("/api/streaming")
    assert response.status_code == 200
