"""The outbound network policy: which addresses a user-supplied URL may reach."""

from __future__ import annotations

import ipaddress

import pytest

from connectors.errors import UnsafeDestination
from connectors.netguard import REFUSED, NetworkPolicy, classify


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.8.9.10", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("169.254.169.254", "a cloud metadata address"),
        ("169.254.170.2", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.100.100.200", "a cloud metadata address"),
        ("168.63.129.16", "a cloud metadata address"),
        ("169.254.10.10", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fc00::1", "a unique-local address"),
        ("fd12:3456::1", "a unique-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 (an address, not a bind)
        ("::", "an unspecified address"),
        ("100.64.0.1", "a reserved, non-public address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("::ffff:10.0.0.1", "a private address"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address"),
        ("2002:7f00:1::", "a loopback address"),
    ],
)
def test_non_public_addresses_are_classified(address, reason):
    assert classify(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert classify(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_addresses_networks_and_host_names():
    policy = NetworkPolicy.from_entries(["127.0.0.1", "10.0.0.0/8", "Intranet.Example.", " "])

    policy.check_address("127.0.0.1", ipaddress.ip_address("127.0.0.1"))
    policy.check_address("build-box", ipaddress.ip_address("10.20.30.40"))
    policy.check_address("intranet.example", ipaddress.ip_address("192.168.0.5"))
    with pytest.raises(UnsafeDestination):
        policy.check_address("other", ipaddress.ip_address("192.168.0.5"))


def test_a_broad_network_does_not_open_the_metadata_service(caplog):
    policy = NetworkPolicy.from_entries(["169.254.0.0/16"])

    policy.check_address("link", ipaddress.ip_address("169.254.1.1"))
    with pytest.raises(UnsafeDestination):
        policy.check_address("meta", ipaddress.ip_address("169.254.169.254"))
    assert "cloud metadata" in caplog.text
    NetworkPolicy.from_entries(["169.254.169.254"]).check_address(
        "meta", ipaddress.ip_address("169.254.169.254")
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "is not an http:// or https:// URL"),
        ("http://user:hunter2x@example.com/", "must not contain a user name or password"),
        ("http://example.com:99999/", "has an invalid port"),
        ("http://[::1]:8080/", REFUSED),
    ],
)
def test_urls_are_checked_before_anything_is_resolved(url, message):
    with pytest.raises(UnsafeDestination) as caught:
        NetworkPolicy().check_url(url)

    assert message in str(caught.value)
    assert "hunter2x" not in str(caught.value)


@pytest.mark.parametrize(
    ("address", "detail"),
    [
        ("127.0.0.1", "'host' (127.0.0.1) is a loopback address"),
        ("10.1.2.3", "'host' (10.1.2.3) is a private address"),
        ("169.254.10.10", "'host' (169.254.10.10) is a link-local address"),
        ("169.254.169.254", "'host' (169.254.169.254) is a cloud metadata address"),
    ],
)
def test_a_refusal_tells_the_user_nothing_and_the_log_why(address, detail, caplog):
    with pytest.raises(UnsafeDestination) as caught:
        NetworkPolicy().check_address("host", ipaddress.ip_address(address))

    assert str(caught.value) == REFUSED
    assert address not in repr(caught.value)
    (record,) = caplog.records
    assert (record.name, record.levelname) == ("connectors.netguard", "WARNING")
    assert detail in record.getMessage()
