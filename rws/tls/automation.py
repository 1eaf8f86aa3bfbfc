"""Automation policies while the adapter builds them, and Caddy's merging of them.

`AutomationPolicy` mirrors Caddy's struct rather than its JSON: `issuers` are issuer
objects set by code and `issuers_raw` their encoded form (or one set directly, like the
internal issuer for split-off internal names). The merge rules look at both, so the
distinction decides, for example, whether two policies count as using the same issuers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from rws.tls.forms import put
from rws.tls.names import is_internal, is_ip, is_tailscale, match_wildcard

JSON = Any
Issuer = dict[str, JSON]


@dataclass(eq=False, slots=True)
class AutomationPolicy:
    """One automation policy, field for field as Caddy's struct has it."""

    subjects: list[str] = field(default_factory=list)
    issuers: list[Issuer] = field(default_factory=list)
    issuers_raw: list[Issuer] | None = None
    managers: list[JSON] | None = None
    must_staple: bool = False
    renewal_window_ratio: float = 0.0
    key_type: str = ""
    storage: JSON = None
    on_demand: bool = False
    reuse_private_keys: bool = False
    disable_ocsp_stapling: bool = False
    ocsp_overrides: dict[str, str] | None = None

    def same(self, other: AutomationPolicy) -> bool:
        """Go's reflect.DeepEqual of two policies."""
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        put(out, "subjects", list(self.subjects))
        put(out, "issuers", [copy.deepcopy(issuer) for issuer in self.issuers_raw or []])
        put(out, "get_certificate", copy.deepcopy(self.managers or []))
        put(out, "must_staple", self.must_staple)
        put(out, "renewal_window_ratio", self.renewal_window_ratio)
        put(out, "key_type", self.key_type)
        put(out, "storage", self.storage)
        put(out, "on_demand", self.on_demand)
        put(out, "reuse_private_keys", self.reuse_private_keys)
        put(out, "disable_ocsp_stapling", self.disable_ocsp_stapling)
        if self.ocsp_overrides:
            out["ocsp_overrides"] = dict(self.ocsp_overrides)
        return out


@dataclass(slots=True)
class Automation:
    """The app's `automation` object while it is built."""

    policies: list[AutomationPolicy] = field(default_factory=list)
    on_demand: JSON = None
    ocsp_interval: int = 0
    renew_interval: int = 0
    storage_clean_interval: int = 0

    def to_json(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {}
        put(out, "policies", [p.to_json() for p in self.policies])
        put(out, "on_demand", copy.deepcopy(self.on_demand))
        put(out, "ocsp_interval", self.ocsp_interval)
        put(out, "renew_interval", self.renew_interval)
        put(out, "storage_clean_interval", self.storage_clean_interval)
        return out


def consolidate_automation_policies(aps: list[AutomationPolicy]) -> list[AutomationPolicy] | None:
    """Caddy's consolidateAutomationPolicies: sort most specific first, drop empty policies
    that shadow nothing, then drop duplicates and merge policies that differ only in subjects."""
    aps = list(aps)

    def more_specific(a: AutomationPolicy, b: AutomationPolicy) -> bool:
        if _is_subset(a, b):
            return True
        if _is_subset(b, a):
            return False
        return len(a.subjects) > len(b.subjects)

    go_stable_sort(aps, more_specific)
    empty_count, original_len = 0, len(aps)
    empty = AutomationPolicy()
    i = 0
    while i < len(aps):
        empty.subjects, empty.managers = aps[i].subjects, None
        if aps[i].same(empty):
            empty_count += 1
            shadowed = _shadows(i, aps)
            empty.subjects, empty.managers = [], None
            if shadowed >= 0:
                empty.subjects, empty.managers = aps[shadowed].subjects, aps[shadowed].managers
            if i == len(aps) - 1 or (shadowed >= 0 and aps[shadowed].same(empty)):
                del aps[i]
                i -= 1
        i += 1
    if empty_count == original_len:
        return None
    i = 0
    while i < len(aps):
        i = _merge_into(i, aps) + 1
    return aps


def _merge_into(i: int, aps: list[AutomationPolicy]) -> int:
    """Fold the later policies that match aps[i] into it; the index to continue from."""
    j = i + 1
    while j < len(aps):
        a, b = aps[i], aps[j]
        if a.same(b):
            del aps[j]
            return i - 1  # look at aps[i] again
        if (_same_issuers(a, b) and a.managers == b.managers and a.storage == b.storage
                and a.must_staple == b.must_staple and a.key_type == b.key_type and a.on_demand == b.on_demand
                and a.reuse_private_keys == b.reuse_private_keys
                and a.renewal_window_ratio == b.renewal_window_ratio):
            if a.subjects and not b.subjects:
                # the later catch-all covers aps[i] as well, unless a less specific policy in
                # between would then catch aps[i]'s names instead
                if _shadows(i, aps) >= j:
                    del aps[i]
                    return i - 1
            else:
                a.subjects = a.subjects + [s for s in b.subjects if s not in a.subjects]
                del aps[j]
                j -= 1
        j += 1
    return i


def _is_subset(a: AutomationPolicy, b: AutomationPolicy) -> bool:
    if not b.subjects:
        return True
    if not a.subjects:
        return False
    return all(any(match_wildcard(s, w) for w in b.subjects) for s in a.subjects)


def _shadows(i: int, aps: list[AutomationPolicy]) -> int:
    for j in range(i + 1, len(aps)):
        if _is_subset(aps[i], aps[j]):
            return j
    return -1


def _same_issuers(a: AutomationPolicy, b: AutomationPolicy) -> bool:
    if a.issuers_raw == b.issuers_raw:
        return _compatible_implicit_issuers(a, b)
    return _uses_default_internal_issuer(a) and _uses_default_internal_issuer(b)


def _uses_default_internal_issuer(ap: AutomationPolicy) -> bool:
    if not ap.issuers_raw and not ap.issuers:
        return _implicit_issuer_class(ap) == "internal"
    return ap.issuers_raw == [{"module": "internal"}] and not ap.issuers


def _compatible_implicit_issuers(a: AutomationPolicy, b: AutomationPolicy) -> bool:
    if a.issuers_raw or a.issuers or b.issuers_raw or b.issuers:
        return True
    a_class, b_class = _implicit_issuer_class(a), _implicit_issuer_class(b)
    return "catch-all" in (a_class, b_class) or a_class == b_class


def _implicit_issuer_class(ap: AutomationPolicy) -> str:
    if not ap.subjects:
        return "catch-all"
    public = [qualifies_for_public_cert_in(ap, s) for s in ap.subjects]
    if all(public):
        return "public"
    return "mixed" if any(public) else "internal"


def has_all_public_names(ap: AutomationPolicy) -> bool:
    return all(qualifies_for_public_cert_in(ap, s) and not is_tailscale(s) for s in ap.subjects)


def qualifies_for_public_cert_in(ap: AutomationPolicy, subject: str) -> bool:
    """Like qualifies_for_public_cert, but IPs never qualify (no implicit public IP certs) and
    on-demand policies accept `*.*.tld` (they never obtain the wildcard itself)."""
    return not is_ip(subject) and not is_internal(subject) and (subject.count("*.") < 2 or ap.on_demand)



def go_stable_sort(items: list[Any], less: Callable[[Any, Any], bool]) -> None:
    """Go's sort.SliceStable (insertion-sorted blocks of 20, then SymMerge), step for step:
    the adapter's comparators are not strict orders, so only the same algorithm gives the
    same result."""
    n = len(items)

    def insertion(a: int, b: int) -> None:
        for i in range(a + 1, b):
            j = i
            while j > a and less(items[j], items[j - 1]):
                items[j], items[j - 1] = items[j - 1], items[j]
                j -= 1

    def swap_range(a: int, b: int, count: int) -> None:
        for i in range(count):
            items[a + i], items[b + i] = items[b + i], items[a + i]

    def rotate(a: int, m: int, b: int) -> None:
        i, j = m - a, b - m
        while i != j:
            if i > j:
                swap_range(m - i, m, j)
                i -= j
            else:
                swap_range(m - i, m + j - i, i)
                j -= i
        swap_range(m - i, m, i)

    def sym_merge(a: int, m: int, b: int) -> None:
        if m - a == 1:
            i, j = m, b
            while i < j:
                h = (i + j) // 2
                if less(items[h], items[a]):
                    i = h + 1
                else:
                    j = h
            for k in range(a, i - 1):
                items[k], items[k + 1] = items[k + 1], items[k]
            return
        if b - m == 1:
            i, j = a, m
            while i < j:
                h = (i + j) // 2
                if not less(items[m], items[h]):
                    i = h + 1
                else:
                    j = h
            for k in range(m, i, -1):
                items[k], items[k - 1] = items[k - 1], items[k]
            return
        mid = (a + b) // 2
        n2 = mid + m
        if m > mid:
            start, r = n2 - b, mid
        else:
            start, r = a, m
        p = n2 - 1
        while start < r:
            c = (start + r) // 2
            if not less(items[p - c], items[c]):
                start = c + 1
            else:
                r = c
        end = n2 - start
        if start < m < end:
            rotate(start, m, end)
        if a < start < mid:
            sym_merge(a, start, mid)
        if mid < end < b:
            sym_merge(mid, end, b)

    block = 20
    a, b = 0, block
    while b <= n:
        insertion(a, b)
        a, b = b, b + block
    insertion(a, n)
    while block < n:
        a, b = 0, 2 * block
        while b <= n:
            sym_merge(a, a + block, b)
            a, b = b, b + 2 * block
        m = a + block
        if m < n:
            sym_merge(a, m, n)
        block *= 2
