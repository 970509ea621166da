"""The official `vonage` Python library (Verify legacy, v1 API) against phonegate: only the API
host is changed, through the library's HttpClientOptions."""
import pytest
from vonage import Auth, HttpClientOptions, Vonage
from vonage_verify_legacy import VerifyRequest
from vonage_verify_legacy.errors import VerifyError

from conftest import BASE, KEY_ID, SECRET, latest_code, wrong


@pytest.fixture(scope="module")
def verify():
    host = BASE.removeprefix("https://")
    client = Vonage(Auth(api_key=KEY_ID, api_secret=SECRET), HttpClientOptions(api_host=host, rest_host=host))
    return client.verify_legacy


def test_start_wrong_then_right_code_then_not_found(verify, number):
    started = verify.start_verification(VerifyRequest(number=number.lstrip("+"), brand="PySDK", code_length=6))
    assert started.status == "0" and len(started.request_id) == 32
    code = latest_code(number)
    assert verify.search(started.request_id).status == "IN PROGRESS"

    with pytest.raises(VerifyError, match="'status': '16'"):
        verify.check_code(started.request_id, wrong(code))
    ok = verify.check_code(started.request_id, code)
    assert (ok.status, ok.request_id) == ("0", started.request_id)
    assert verify.search(started.request_id).status == "SUCCESS"
    with pytest.raises(VerifyError, match="'status': '6'"):
        verify.check_code(started.request_id, code)


def test_concurrent_start_is_status_10(verify, number):
    verify.start_verification(VerifyRequest(number=number.lstrip("+"), brand="PySDK"))
    with pytest.raises(VerifyError, match="'status': '10'"):
        verify.start_verification(VerifyRequest(number=number.lstrip("+"), brand="PySDK"))


def test_lockout_after_three_wrong_codes(verify, number):
    started = verify.start_verification(VerifyRequest(number=number.lstrip("+"), brand="PySDK"))
    code = latest_code(number)
    for expected in ["16", "16", "17"]:
        with pytest.raises(VerifyError, match=f"'status': '{expected}'"):
            verify.check_code(started.request_id, wrong(code))
    with pytest.raises(VerifyError, match="'status': '17'"):
        verify.check_code(started.request_id, code)
    assert verify.search(started.request_id).status == "FAILED"


def test_cancel_and_no_next_event(verify, number):
    # Workflow 6 is one SMS: no next event.
    started = verify.start_verification(VerifyRequest(number=number.lstrip("+"), brand="PySDK", workflow_id=6))
    with pytest.raises(VerifyError, match="'status': '19'"):
        verify.trigger_next_event(started.request_id)
    canceled = verify.cancel_verification(started.request_id)
    assert (canceled.status, canceled.command) == ("0", "cancel")
    assert verify.search(started.request_id).status == "CANCELLED"


def test_workflow_2_trigger_next_event_until_19(verify, number):
    started = verify.start_verification(
        VerifyRequest(number=number.lstrip("+"), brand="PySDK", workflow_id=2, next_event_wait=120, pin_expiry=360)
    )
    code = latest_code(number)
    for _ in range(2):
        next_event = verify.trigger_next_event(started.request_id)
        assert (next_event.status, next_event.command) == ("0", "trigger_next_event")
    with pytest.raises(VerifyError, match="'status': '19'"):
        verify.trigger_next_event(started.request_id)
    found = verify.search(started.request_id)
    assert [e.type for e in found.events] == ["sms", "sms", "tts"]
    # One code for every event: the first text's code checks after the call.
    assert verify.check_code(started.request_id, code).status == "0"
