"""Shared fixtures: where the phonegate server is, its credentials, and the dev outbox."""
import os
import random

import pytest
import requests

BASE = os.environ["SDK_BASE"]
KEY_ID = os.environ["SDK_KEY_ID"]
SECRET = os.environ["SDK_SECRET"]


@pytest.fixture
def number():
    """A fresh valid German mobile number in E.164."""
    return "+49151" + "".join(random.choice("0123456789") for _ in range(8))


def latest_code(to):
    """The code in the newest dev-outbox message to `to` (TLS verified against the test CA)."""
    r = requests.get(f"{BASE}/api/dev/outbox", params={"to": to}, headers={"Authorization": f"Bearer {SECRET}"}, timeout=10)
    r.raise_for_status()
    return r.json()["messages"][0]["body"].split()[-1]


def wrong(code):
    return "".join("1" if c == "0" else "0" for c in code)
