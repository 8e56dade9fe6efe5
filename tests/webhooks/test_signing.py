"""Signatures as the Standard Webhooks specification defines them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from standardwebhooks.webhooks import Webhook as Verifier

from tekudasai.webhooks import signing

# The specification's published example (standard-webhooks, spec/standard-webhooks.md and the
# reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_PAYLOAD = '{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_spec_example_signs_to_the_published_signature() -> None:
    assert signing.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD) == SPEC_SIGNATURE
    assert (
        signing.signature(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_PAYLOAD.encode())
        == SPEC_SIGNATURE
    )


def test_the_signature_is_hmac_sha256_over_id_timestamp_body() -> None:
    """The same figure from the definition, without the library."""
    key = base64.b64decode(SPEC_SECRET.removeprefix("whsec_"))
    signed = f"{SPEC_ID}.{SPEC_TIMESTAMP}.{SPEC_PAYLOAD}".encode()
    mac = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert f"v1,{mac}" == SPEC_SIGNATURE


def test_new_secrets_are_random_whsec_base64_and_verify_their_own_headers() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == signing.SECRET_BYTES
    body = '{"type":"ticket.created"}'
    headers = signing.headers(first, signing.new_msg_id(), int(time.time()), body)
    assert headers["webhook-id"].startswith("msg_")
    assert Verifier(first).verify(body, headers) == {"type": "ticket.created"}
    # Another secret, or one changed byte of the body, does not verify.
    for secret, data in ((second, body), (first, body.replace("created", "updated"))):
        try:
            Verifier(secret).verify(data, headers)
        except Exception as exc:
            assert "signature" in str(exc).lower()
        else:
            raise AssertionError("a wrong secret or body must not verify")
