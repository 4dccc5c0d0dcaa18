"""Secrets never show themselves by accident; credentials are immutable."""

from __future__ import annotations

import base64
import copy
import json
import pickle
from urllib.parse import quote

import pytest

from connectors import Credentials, Secret
from connectors.secrets import Scrubber

VALUE = "s3cr3t/+value=="


def test_a_secret_hides_its_value_from_repr_str_and_formatting():
    secret = Secret(VALUE)

    shown = [repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % secret]  # noqa: UP031

    assert all(VALUE not in text for text in shown)
    assert str(secret) == "********"
    assert secret.reveal() == VALUE


def test_a_secret_cannot_be_pickled_or_changed():
    secret = Secret(VALUE)

    with pytest.raises(TypeError):
        pickle.dumps(secret)
    with pytest.raises(AttributeError):
        secret._value = "other"
    assert copy.deepcopy(secret) is secret


def test_secrets_compare_by_value():
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret("other")
    assert Secret(Secret(VALUE)).reveal() == VALUE


def test_credentials_wrap_plain_secrets_and_show_only_their_names():
    credentials = Credentials(
        type="rest", fields={"base_url": "https://x.example"}, secrets={"token": VALUE}, key="c:9"
    )

    assert isinstance(credentials.secrets["token"], Secret)
    assert credentials.secret("token") == VALUE
    assert VALUE not in repr(credentials)
    assert "token" in repr(credentials)
    assert "c:9" in repr(credentials)


def test_credentials_are_immutable_and_not_serialisable():
    credentials = Credentials(type="rest", secrets={"token": VALUE})

    with pytest.raises(AttributeError):
        credentials.key = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        credentials.secrets["token"] = Secret("x")  # type: ignore[index]
    with pytest.raises(TypeError):
        pickle.dumps(credentials)


def test_the_fingerprint_changes_with_the_secret_but_does_not_contain_it():
    key = b"k" * 32
    one = Credentials(type="rest", secrets={"token": VALUE}, key="c:1")
    same = Credentials(type="rest", secrets={"token": VALUE}, key="c:1")
    rotated = Credentials(type="rest", secrets={"token": VALUE + "2"}, key="c:1")

    assert one.fingerprint(key) == same.fingerprint(key)
    assert one.fingerprint(key) != rotated.fingerprint(key)
    assert VALUE not in one.fingerprint(key)


def test_the_fingerprint_cannot_be_computed_without_its_key():
    # A plain hash in a cache key would let whoever lists the cache confirm a guessed token.
    credentials = Credentials(type="rest", secrets={"token": VALUE})

    assert credentials.fingerprint(b"a" * 32) != credentials.fingerprint(b"b" * 32)
    with pytest.raises(TypeError):
        credentials.fingerprint()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="16 to 64 bytes"):
        credentials.fingerprint(b"short")


def test_the_scrubber_removes_a_secret_in_every_form_it_travels_in():
    scrubber = Scrubber.for_credentials(
        Credentials(
            type="rest", fields={"username": "ada"}, secrets={"token": VALUE, "password": "pw-1234"}
        )
    )
    basic = base64.b64encode(b"ada:pw-1234").decode()
    text = f"raw {VALUE}, url {quote(VALUE, safe='')}, json {json.dumps(VALUE)}, basic {basic}"

    cleaned = scrubber.text(text)

    assert VALUE not in cleaned
    assert quote(VALUE, safe="") not in cleaned
    assert basic not in cleaned
    assert cleaned.count("[redacted]") == 4


def test_the_scrubber_cleans_nested_data():
    scrubber = Scrubber([VALUE])

    cleaned = scrubber.data({"a": [f"Bearer {VALUE}", 1, None], VALUE: {"b": VALUE}})

    assert VALUE not in json.dumps(cleaned)
    assert scrubber.found_in(json.dumps({"x": VALUE}).encode())
