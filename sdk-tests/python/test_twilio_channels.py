"""Twilio Verify v2's call, WhatsApp and e-mail channels through the official `twilio` Python
library: the service's channel fields, each channel's verification and its check, and a second
start by another channel adding an attempt to the same verification."""
import re
import uuid

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from conftest import BASE, KEY_ID, SECRET


class PhonegateHttpClient(TwilioHttpClient):
    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://verify.twilio.com", BASE), *args, **kwargs)


def outbox(to):
    """The dev outbox's messages to `to` (a number or an address), newest first."""
    r = requests.get(f"{BASE}/api/dev/outbox", params={"to": to}, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    r.raise_for_status()
    return r.json()["messages"]


def code_of(message):
    """A call says the digits one by one, twice; the other channels carry the code whole."""
    if message["channel"] == "voice":
        return re.sub(r"\D", "", message["body"])[:6]
    return re.findall(r"\d{4,10}", message["body"])[-1]


@pytest.fixture(scope="module")
def verify():
    return Client(KEY_ID, SECRET, account_sid="AC" + KEY_ID[2:], http_client=PhonegateHttpClient()).verify.v2


@pytest.fixture(scope="module")
def service(verify):
    created = verify.services.create(
        friendly_name=f"Python channels {uuid.uuid4().hex[:8]}",
        tts_name="Py Shop",
        whatsapp_from="+15005550006",
        whatsapp_msg_service_sid="MG" + "0" * 32,
    )
    assert (created.tts_name, created.dtmf_input_required, created.whatsapp["from"]) == ("Py Shop", False, "+15005550006")
    return verify.services(created.sid)


def test_call_in_the_locale_with_the_tts_name(service, number):
    v = service.verifications.create(to=number, channel="call", locale="de", send_digits="w1")
    assert (v.channel, v.status) == ("call", "pending")
    assert [a["channel"] for a in v.send_code_attempts] == ["call"]
    call = outbox(number)[0]
    assert call["channel"] == "voice" and call["body"].startswith("Ihr Bestätigungscode für Py Shop lautet: ")
    check = service.verification_checks.create(to=number, code=code_of(call))
    assert (check.status, check.channel) == ("approved", "call")


def test_whatsapp(service, number):
    v = service.verifications.create(to=number, channel="whatsapp")
    assert v.channel == "whatsapp"
    message = outbox(number)[0]
    assert message["channel"] == "whatsapp"
    assert service.verification_checks.create(verification_sid=v.sid, code=code_of(message)).valid


def test_email_with_channel_configuration(service):
    to = f"py-{uuid.uuid4().hex[:8]}@example.com"
    config = {"from": "codes@shop.example", "from_name": "Shop Codes", "template_id": "d-123", "substitutions": {"a": "b"}}
    v = service.verifications.create(to=to, channel="email", channel_configuration=config)
    assert (v.channel, v.to) == ("email", to)
    mail = outbox(to)[0]
    assert mail["channel"] == "email" and code_of(mail) in mail["html"]
    assert service.verification_checks.create(to=to, code=code_of(mail)).status == "approved"
    with pytest.raises(TwilioRestException) as e:
        service.verifications.create(to=to, channel="email", channel_configuration={"from": "nope"})
    assert (e.value.status, e.value.code) == (400, 60200)


def test_a_second_channel_adds_an_attempt(service, number):
    first = service.verifications.create(to=number, channel="sms")
    second = service.verifications.create(to=number, channel="whatsapp")
    assert second.sid == first.sid
    assert sorted(a["channel"] for a in second.send_code_attempts) == ["sms", "whatsapp"]
    assert len(service.verifications(first.sid).fetch().send_code_attempts) == 2
    assert len({code_of(m) for m in outbox(number)}) == 1, "one code for both"


def test_refusals_carry_twilio_codes(service):
    with pytest.raises(TwilioRestException) as e:
        service.verifications.create(to="+493012345678", channel="sms")
    assert (e.value.status, e.value.code) == (403, 60205)
    with pytest.raises(TwilioRestException) as e:
        service.verifications.create(to="+499001234567", channel="call")
    assert (e.value.status, e.value.code) == (403, 60605)
