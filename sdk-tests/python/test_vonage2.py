"""The official `vonage` Python library's Verify v2 client (`client.verify`) against phonegate:
only the API host is changed, through the library's HttpClientOptions. The client signs its calls
with an application JWT when given the application's id and private key, and uses HTTP Basic
with the key id and secret otherwise. The library has no templates (nor template_id) for Verify
v2: those calls go through its own HTTP client (`client.http_client`), with the same JWT and the
same errors. Refusals other than 401, 403, 404, 429 and 500 are `HttpRequestError`s carrying
the response. The application's status URL is a local server here: its callbacks are checked
with `vonage_jwt.verify_signature` and the signature secret."""
import base64
import hashlib
import json
import os
import re
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client import AuthenticationError, HttpRequestError, NotFoundError
from vonage_jwt import verify_signature
from vonage_verify import SilentAuthChannel, SmsChannel, VerifyRequest, VoiceChannel

from conftest import BASE, SECRET, latest_code, wrong

APP_ID = os.environ["SDK_V2_PY_APP_ID"]
PRIVATE_KEY = os.environ["SDK_V2_PRIVATE_KEY"]
SIGNATURE_SECRET = os.environ["SDK_V2_SIGNATURE_SECRET"]
CALLBACK_PORT = int(os.environ["SDK_V2_PY_CALLBACK_PORT"])
KEY_ID = os.environ["SDK_V2_PY_KEY_ID"]
KEY_SECRET = os.environ["SDK_V2_PY_KEY_SECRET"]

HOST = BASE.removeprefix("https://")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def options():
    return HttpClientOptions(api_host=HOST, rest_host=HOST)


@pytest.fixture(scope="module")
def client():
    """The application's client: every call carries a fresh RS256 JWT."""
    return Vonage(Auth(application_id=APP_ID, private_key=PRIVATE_KEY), options())


@pytest.fixture(scope="module")
def verify(client):
    return client.verify


def outbox(to):
    """The dev outbox's messages to `to` (E.164), newest first."""
    r = requests.get(f"{BASE}/api/dev/outbox", params={"to": to}, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    r.raise_for_status()
    return r.json()["messages"]


def code_of(message):
    """A call says the digits one by one, twice; a text carries the code whole."""
    if message["channel"] == "voice":
        return re.sub(r"\D", "", message["body"])[:6]
    return re.findall(r"\d{4,10}", message["body"])[-1]


def refusal(excinfo):
    """The HTTP status and the Vonage error body of a refused call."""
    response = excinfo.value.response
    return response.status_code, (response.json() if response.content else None)


def sms(number, **extra):
    return VerifyRequest(brand="PySDK", workflow=[SmsChannel(to=number.lstrip("+"))], **extra)


class CallbackSink:
    """The application's status URL: records every callback and lets a test wait for one."""

    def __init__(self, port):
        self.received = []
        self.changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with sink.changed:
                    sink.received.append({"path": self.path, "headers": dict(self.headers), "raw": raw, "body": body})
                    sink.changed.notify_all()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout=20):
        """The first callback received (or still to come within `timeout` s) that satisfies `predicate`."""

        def match():
            return next((c for c in self.received if isinstance(c["body"], dict) and predicate(c["body"])), None)

        with self.changed:
            found = self.changed.wait_for(match, timeout)
        assert found, f"no matching callback within {timeout} s; received: {[c['body'] or c['raw'] for c in self.received]}"
        return found

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module", autouse=True)
def callbacks():
    """Listens for the whole module, so that every request's callbacks find it."""
    sink = CallbackSink(CALLBACK_PORT)
    yield sink
    sink.close()


def test_sms_workflow_completes_and_a_wrong_code_is_400(verify, number):
    started = verify.start_verification(sms(number))
    assert UUID.match(started.request_id) and started.check_url is None
    code = latest_code(number)

    with pytest.raises(HttpRequestError) as e:
        verify.check_code(started.request_id, wrong(code))
    status, body = refusal(e)
    assert status == 400
    assert all(isinstance(body.get(k), str) for k in ("type", "title", "detail", "instance")), body

    checked = verify.check_code(started.request_id, code)
    assert (checked.request_id, checked.status) == (started.request_id, "completed")


def test_basic_auth_with_the_key_alone(number):
    verify = Vonage(Auth(api_key=KEY_ID, api_secret=KEY_SECRET), options()).verify
    started = verify.start_verification(sms(number))
    assert verify.check_code(started.request_id, latest_code(number)).status == "completed"

    refused = Vonage(Auth(api_key=KEY_ID, api_secret=KEY_SECRET + "x"), options()).verify
    with pytest.raises(AuthenticationError):
        refused.start_verification(sms(number))


def test_next_workflow_sends_the_call_then_409(verify, number):
    to = number.lstrip("+")
    started = verify.start_verification(VerifyRequest(brand="PySDK", workflow=[SmsChannel(to=to), VoiceChannel(to=to)]))
    [text] = outbox(number)
    assert text["channel"] == "sms"

    assert verify.trigger_next_workflow(started.request_id) is None
    call, first = outbox(number)
    assert (call["channel"], first["channel"]) == ("voice", "sms")

    with pytest.raises(HttpRequestError) as e:
        verify.trigger_next_workflow(started.request_id)
    assert refusal(e)[0] == 409
    # One code for the whole request: the text's code completes it after the call.
    assert verify.check_code(started.request_id, code_of(text)).status == "completed"

    with pytest.raises(NotFoundError):
        verify.trigger_next_workflow(str(uuid.uuid4()))


def test_cancel_is_204_then_the_code_is_404(client, verify, number):
    started = verify.start_verification(sms(number))
    code = latest_code(number)
    assert verify.cancel_verification(started.request_id) is None
    assert client.http_client.last_response.status_code == 204
    with pytest.raises(NotFoundError):
        verify.check_code(started.request_id, code)
    with pytest.raises(NotFoundError):
        verify.cancel_verification(str(uuid.uuid4()))


def test_concurrent_request_is_409_naming_the_first(verify, number):
    started = verify.start_verification(sms(number))
    with pytest.raises(HttpRequestError) as e:
        verify.start_verification(sms(number))
    status, body = refusal(e)
    assert status == 409
    assert body["request_id"] == started.request_id
    assert all(isinstance(body.get(k), str) for k in ("type", "title", "detail", "instance")), body


def test_invalid_parameter_is_422_with_invalid_parameters(verify, number):
    # The library refuses a code_length under 4 itself; model_construct skips its validation, as
    # an app on another client would, so that phonegate's own answer is seen.
    request = VerifyRequest.model_construct(brand="PySDK", code_length=3, workflow=[SmsChannel(to=number.lstrip("+"))])
    with pytest.raises(HttpRequestError) as e:
        verify.start_verification(request)
    status, body = refusal(e)
    assert status == 422
    assert any("code_length" in p["name"] and isinstance(p["reason"], str) for p in body["invalid_parameters"]), body
    assert outbox(number) == []


def test_custom_code(verify, number):
    started = verify.start_verification(sms(number, code="ab12cd"))
    assert re.search(r"\bab12cd\b", outbox(number)[0]["body"])
    assert verify.check_code(started.request_id, "ab12cd").status == "completed"


def test_silent_auth_check_url_gives_the_code(verify, callbacks, number):
    to = number.lstrip("+")
    started = verify.start_verification(VerifyRequest(brand="PySDK", workflow=[SilentAuthChannel(to=to), SmsChannel(to=to)]))
    assert UUID.match(started.request_id)
    assert started.check_url and started.check_url.startswith("https://")

    # The device opens check_url over mobile data (the simulator plays its operator), following redirects.
    device = requests.get(started.check_url, params={"sim": "match"}, timeout=10)
    assert device.status_code == 200, (device.url, device.text)
    answer = device.json()
    assert answer["request_id"] == started.request_id
    assert verify.check_code(started.request_id, answer["code"]).status == "completed"

    event = callbacks.wait_for(lambda b: b.get("request_id") == started.request_id and b.get("type") == "event")["body"]
    assert (event["channel"], event["status"]) == ("silent_auth", "action_pending")
    assert event["action"] == {"type": "check", "check_url": started.check_url}


def test_templates_and_fragments(client, verify, number):
    http, api = client.http_client, client.http_client.api_host
    suffix = uuid.uuid4().hex[:8]
    first = http.post(api, "/v2/verify/templates", {"name": f"py_tpl_{suffix}_a"})
    second = http.post(api, "/v2/verify/templates", {"name": f"py_tpl_{suffix}_b"})
    assert UUID.match(first["template_id"])
    assert (first["name"], first["is_default"]) == (f"py_tpl_{suffix}_a", False)
    tid = first["template_id"]

    page = http.get(api, "/v2/verify/templates", {"page": 1, "page_size": 1})
    assert (page["page"], page["page_size"], len(page["_embedded"]["templates"])) == (1, 1, 1)
    assert page["total_items"] >= 2 and page["total_pages"] == page["total_items"]
    assert "next" in page["_links"]
    seen = []
    for n in range(1, page["total_pages"] + 1):
        listed = http.get(api, "/v2/verify/templates", {"page": n, "page_size": 1})
        seen += [t["template_id"] for t in listed["_embedded"]["templates"]]
    assert "next" not in listed["_links"], "the last page links no next one"
    assert {tid, second["template_id"]} <= set(seen)

    assert http.get(api, f"/v2/verify/templates/{tid}")["name"] == f"py_tpl_{suffix}_a"
    assert http.patch(api, f"/v2/verify/templates/{tid}", {"name": f"py_tpl_{suffix}_c"})["name"] == f"py_tpl_{suffix}_c"
    assert http.get(api, f"/v2/verify/templates/{tid}")["name"] == f"py_tpl_{suffix}_c"

    fragments = f"/v2/verify/templates/{tid}/template_fragments"
    fragment = http.post(api, fragments, {"channel": "sms", "locale": "en-us", "text": "Py template says ${code}"})
    fid = fragment["template_fragment_id"]
    assert UUID.match(fid)
    assert (fragment["channel"], fragment["locale"], fragment["text"]) == ("sms", "en-us", "Py template says ${code}")
    listed = http.get(api, fragments, {"page": 1, "page_size": 10})
    assert listed["total_items"] == 1
    assert [f["template_fragment_id"] for f in listed["_embedded"]["template_fragments"]] == [fid]
    assert http.patch(api, f"{fragments}/{fid}", {"text": "Py template now says ${code}"})["text"] == "Py template now says ${code}"
    assert http.get(api, f"{fragments}/{fid}")["text"] == "Py template now says ${code}"

    # vonage's VerifyRequest has no template_id: the start goes through the library's HTTP client.
    started = http.post(
        api,
        "/v2/verify",
        {"brand": "PySDK", "template_id": tid, "locale": "en-us", "workflow": [{"channel": "sms", "to": number.lstrip("+")}]},
    )
    text = outbox(number)[0]["body"].strip()
    found = re.fullmatch(r"Py template now says (\d{4,10})", text)
    assert found, f"the text uses the fragment: {text!r}"
    assert verify.check_code(started["request_id"], found.group(1)).status == "completed"

    assert http.delete(api, f"{fragments}/{fid}") is None and http.last_response.status_code == 204
    with pytest.raises(NotFoundError):
        http.get(api, f"{fragments}/{fid}")
    for template in (tid, second["template_id"]):
        assert http.delete(api, f"/v2/verify/templates/{template}") is None and http.last_response.status_code == 204
    with pytest.raises(NotFoundError):
        http.get(api, f"/v2/verify/templates/{tid}")


def test_summary_callback_is_signed_with_the_signature_secret(verify, callbacks, number):
    started = verify.start_verification(sms(number, client_ref="py-callback"))
    assert verify.check_code(started.request_id, latest_code(number)).status == "completed"

    callback = callbacks.wait_for(
        lambda b: b.get("request_id") == started.request_id and b.get("type") == "summary" and b.get("status") == "completed"
    )
    assert callback["path"] == "/vonage/status"
    headers = {k.lower(): v for k, v in callback["headers"].items()}
    assert headers.get("content-type", "").startswith("application/json")
    scheme, _, token = headers.get("authorization", "").partition(" ")
    assert scheme == "Bearer"
    assert verify_signature(token, SIGNATURE_SECRET) is True
    assert verify_signature(token, SIGNATURE_SECRET + "x") is False

    header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in token.split(".")[:2])
    assert header["alg"] == "HS256"
    assert claims["payload_hash"] == hashlib.sha256(callback["raw"]).hexdigest()
    assert isinstance(claims["iat"], int) and isinstance(claims["jti"], str)

    body = callback["body"]
    assert body["client_ref"] == "py-callback" and isinstance(body["triggered_at"], str)
    assert [w["channel"] for w in body["workflow"]] == ["sms"]
