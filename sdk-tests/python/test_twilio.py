"""The official `twilio` Python library against phonegate, as an app written for Twilio Verify
would use it: only the HTTP client is swapped to send verify.twilio.com requests to phonegate."""
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from conftest import BASE, KEY_ID, SECRET, latest_code, wrong


class PhonegateHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://verify.twilio.com", BASE), *args, **kwargs)


@pytest.fixture(scope="module")
def verify():
    client = Client(KEY_ID, SECRET, account_sid="AC" + KEY_ID[2:], http_client=PhonegateHttpClient())
    return client.verify.v2


@pytest.fixture(scope="module")
def service(verify):
    created = verify.services.create(friendly_name="Python SDK", code_length=6)
    assert created.sid.startswith("VA") and created.code_length == 6
    assert verify.services(created.sid).fetch().friendly_name == "Python SDK"
    return verify.services(created.sid)


def test_start_wrong_then_right_code_then_not_found(service, number):
    v = service.verifications.create(to=number, channel="sms")
    assert (v.status, v.valid, v.to, v.channel) == ("pending", False, number, "sms")
    assert service.verifications(v.sid).fetch().status == "pending"
    code = latest_code(number)

    bad = service.verification_checks.create(to=number, code=wrong(code))
    assert (bad.status, bad.valid) == ("pending", False)
    good = service.verification_checks.create(verification_sid=v.sid, code=code)
    assert (good.status, good.valid, good.sid) == ("approved", True, v.sid)

    with pytest.raises(TwilioRestException) as e:
        service.verification_checks.create(verification_sid=v.sid, code=code)
    assert (e.value.status, e.value.code) == (404, 20404)


def test_lockout_after_five_wrong_codes(service, number):
    v = service.verifications.create(to=number, channel="sms")
    code = latest_code(number)
    statuses = [service.verification_checks.create(verification_sid=v.sid, code=wrong(code)).status for _ in range(5)]
    assert statuses == ["pending"] * 4 + ["max_attempts_reached"]
    with pytest.raises(TwilioRestException) as e:
        service.verification_checks.create(verification_sid=v.sid, code=code)
    assert (e.value.status, e.value.code) == (429, 60202)


def test_cancel(service, number):
    v = service.verifications.create(to=number, channel="sms")
    assert service.verifications(v.sid).update(status="canceled").status == "canceled"
    with pytest.raises(TwilioRestException) as e:
        service.verifications(v.sid).fetch()
    assert e.value.code == 20404


def test_invalid_number_is_twilio_60200(service):
    with pytest.raises(TwilioRestException) as e:
        service.verifications.create(to="+12", channel="sms")
    assert (e.value.status, e.value.code) == (400, 60200)


def test_the_account_sid_alias_alone_authenticates_and_locales_custom_codes_and_psd2(number):
    # As `Client(account_sid, auth_token)`: the key's AC… alias and its secret, nothing else.
    client = Client("AC" + KEY_ID[2:], SECRET, http_client=PhonegateHttpClient())
    verify = client.verify.v2
    svc = verify.services.create(friendly_name="Python fidelity", custom_code_enabled=True, psd2_enabled=True)
    again = verify.services.create(friendly_name="Python fidelity", custom_code_enabled=True, psd2_enabled=True)
    assert again.sid == svc.sid, "a service created again at boot is the same service"
    assert any(s.sid == svc.sid for s in verify.services.list(page_size=1))
    s = verify.services(svc.sid)
    v = s.verifications.create(to=number, channel="sms", locale="ja", custom_code="97531", amount="¥500", payee="Shop")
    assert (v.amount, v.payee) == ("¥500", "Shop")
    assert v.send_code_attempts[0]["attempt_sid"].startswith("VL")
    checked = s.verification_checks.create(to=number, code="97531", amount="¥500", payee="Shop")
    assert checked.status == "approved"
    with pytest.raises(TwilioRestException) as landline:
        s.verifications.create(to="+493012345678", channel="sms")
    assert (landline.value.status, landline.value.code) == (403, 60205)
