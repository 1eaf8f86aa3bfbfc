"""The name rules automation policies are built with (certmagic's), and the port of Go's
stable sort the policy merging depends on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rws.tls.automation import go_stable_sort
from rws.tls.names import (
    is_internal,
    is_ip,
    match_wildcard,
    qualifies_for_cert,
    qualifies_for_public_cert,
)


@pytest.mark.parametrize(("name", "public"), [
    ("example.com", True),
    ("*.example.com", True),
    ("*.*.example.com", False),
    ("*.com", False),
    ("localhost", False),
    ("app.localhost", False),
    ("printer.local", False),
    ("db.internal", False),
    ("nas.home.arpa", False),
    ("127.0.0.1", False),
    ("10.1.2.3", False),
    ("192.168.1.1", False),
    ("::1", False),
    ("fe80::1", False),
    ("8.8.8.8", True),
    ("2001:db8::1", True),
])
def test_which_names_qualify_for_a_public_certificate(name: str, public: bool) -> None:
    assert qualifies_for_public_cert(name) is public


@pytest.mark.parametrize("name", ["", " ", ".example.com", "example.com.", "foo.*.example.com", "{host}.example.com",
                                  "a b.example.com", "user@example.com"])
def test_names_that_cannot_have_any_certificate(name: str) -> None:
    assert not qualifies_for_cert(name)


def test_ip_and_internal_names() -> None:
    assert is_ip("::1") and is_ip("1.2.3.4") and not is_ip("example.com")
    assert is_internal("LOCALHOST.") and is_internal("[::1]:443") and not is_internal("example.com")


@pytest.mark.parametrize(("subject", "wildcard", "covered"), [
    ("a.example.com", "*.example.com", True),
    ("A.Example.com", "*.example.com", True),
    ("example.com", "*.example.com", False),
    ("a.b.example.com", "*.example.com", False),
    ("a.b.example.com", "*.*.example.com", True),
    ("a.b.example.com", "*.b.example.com", True),
    ("example.com", "example.com", True),
    ("foo.tld", "*.tld", True),
])
def test_wildcard_coverage(subject: str, wildcard: str, covered: bool) -> None:
    assert match_wildcard(subject, wildcard) is covered


@given(st.lists(st.tuples(st.integers(0, 5), st.integers()), max_size=70))
def test_go_stable_sort_is_a_stable_sort_for_strict_orders(items: list[tuple[int, int]]) -> None:
    got = list(items)
    go_stable_sort(got, lambda a, b: a[0] < b[0])
    assert got == sorted(items, key=lambda x: x[0])


def test_go_stable_sort_follows_go_for_a_non_strict_comparator() -> None:
    # "less" is true for equal elements: insertion sort then swaps every neighbour pair it compares
    items = [1, 2, 3]
    go_stable_sort(items, lambda a, b: True)
    assert items == [3, 2, 1]
