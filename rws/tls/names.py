"""Which names can have which certificates: certmagic's rules, as the adapter applies them."""

from __future__ import annotations

import ipaddress


def qualifies_for_cert(subject: str) -> bool:
    """Whether a name can have a certificate at all."""
    return (
        subject.strip() != ""
        and not subject.startswith(".")
        and not subject.endswith(".")
        and ("*" not in subject or subject.startswith("*.") or subject == "*")
        and not any(c in subject for c in "()[]{}<> \t\n\"\\!@#$%^&|;'+=")
    )


def qualifies_for_public_cert(subject: str) -> bool:
    """Whether a public CA could issue a certificate for the name."""
    return (
        qualifies_for_cert(subject)
        and not is_internal(subject)
        and ("*" not in subject or (subject.count("*") == 1 and subject.count(".") > 1
                                    and len(subject) > 2 and subject.startswith("*.")))
    )


def is_ip(subject: str) -> bool:
    return _parse_ip(subject) is not None


def is_internal(subject: str) -> bool:
    name = _host_only(subject).removesuffix(".").lower()
    return (
        name == "localhost"
        or name.endswith((".localhost", ".local", ".internal", ".home.arpa"))
        or _is_internal_ip(name)
    )


_INTERNAL_NETWORKS = [ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "0.0.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "::/7", "fe80::/10", "fc00::/7",
)]


def _is_internal_ip(text: str) -> bool:
    ip = _parse_ip(_host_only(text))
    return ip is not None and any(ip.version == net.version and ip in net for net in _INTERNAL_NETWORKS)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _host_only(text: str) -> str:
    if text.startswith("["):
        end = text.find("]")
        if end > 0 and (end == len(text) - 1 or text[end + 1:].startswith(":")):
            return text[1:end]
        return text
    if text.count(":") == 1:
        return text.split(":", 1)[0]
    return text


def match_wildcard(subject: str, wildcard: str) -> bool:
    """Whether `wildcard` (one `*` label) covers `subject`, or they are equal."""
    subject, wildcard = _host_only(subject).lower(), wildcard.lower()
    if subject == wildcard:
        return True
    if "*" not in wildcard:
        return False
    labels = subject.split(".")
    for i, label in enumerate(labels):
        if not label:
            continue
        labels[i] = "*"
        if ".".join(labels) == wildcard:
            return True
    return False



def is_tailscale(name: str) -> bool:
    """Names Tailscale serves certificates for (Caddy gives them no issuer of their own)."""
    return name.lower().endswith(".ts.net")
