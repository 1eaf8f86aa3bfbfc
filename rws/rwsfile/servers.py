"""Site blocks grouped by listener (`pairing.py`) -> HTTP servers: each server's routes,
error routes, TLS connection policies, automatic-HTTPS flags and logs.
"""

from __future__ import annotations

import copy
from typing import Any

from rws.errors import RwsfileError
from rws.rwsfile.addresses import AddressError, specificity, split_host_port
from rws.rwsfile.directives import AdaptState, build_subroute, consolidate_routes
from rws.rwsfile.options import SERVER_OPTION_FIELDS
from rws.rwsfile.pairing import ports
from rws.rwsfile.sites import Pairing, SiteBlock


def build_servers(
    pairings: list[Pairing], run: AdaptState, named_routes: dict[str, tuple[dict[str, Any], list[str]]]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, pairing in enumerate(pairings):
        _check_ambiguous(pairing)
        pairing.blocks.sort(key=block_sort_key)  # in place: the TLS app reads them in this order
        server = _ServerBuild(pairing, run)
        _add_named_routes(server.srv, pairing.blocks, named_routes)
        for site in pairing.blocks:
            server.add_site(site)
        out[f"srv{i}"] = server.finish()
    return _apply_server_options(out, run.options)


_AUTO_HTTPS_FLAGS = {"off": "disable", "disable_redirects": "disable_redirects",
                     "disable_certs": "disable_certificates", "ignore_loaded_certs": "ignore_loaded_certificates"}


class _ServerBuild:
    """One server from one pairing: the sites are added most specific first, then `finish`."""

    def __init__(self, pairing: Pairing, run: AdaptState) -> None:
        self.pairing = pairing
        self.run = run
        options = run.options
        self.http_port, self.https_port = ports(options)
        self.default_sni: str = options.get("default_sni", "")
        self.fallback_sni: str = options.get("fallback_sni", "")
        self.srv: dict[str, Any] = {"listen": [a.address for a in pairing.addresses]}
        if any(a.protocols and a.protocols != ("",) for a in pairing.addresses):
            self.srv["listen_protocols"] = [list(a.protocols) if a.protocols != ("",) else None
                                            for a in pairing.addresses]
        self.auto_https: dict[str, Any] = {
            _AUTO_HTTPS_FLAGS[v]: True for v in options.get("auto_https") or [] if v in _AUTO_HTTPS_FLAGS
        }
        self.routes: list[Any] = []
        self.error_routes: list[Any] = []
        self.policies: list[dict[str, Any]] = []
        self.empty_policies: list[dict[str, Any]] = []
        self.has_catch_all_policy = False
        self.qualifies_for_tls = False
        self.auto_https_adds_policy = not self.auto_https.get("disable")
        self.logs: dict[str, Any] | None = {} if any(b.pile.get("custom_log") for b in pairing.blocks) else None

    def add_site(self, site: SiteBlock) -> None:
        hosts = site.hosts_from_keys()
        for host in hosts:
            if host in ("0.0.0.0", "::"):
                self.run.warn(f"site block has an unspecified IP address {host!r} which only matches requests "
                              "having that Host header; you probably want the 'bind' directive to configure the "
                              "socket", site.keys[0])
        self._add_policies(site, hosts)
        self._add_auto_https(site)
        for value in site.pile.get("listener_wrapper", []):
            self.srv.setdefault("listener_wrappers", []).append(value.value)
        matcher_sets = _site_matcher_sets(site)
        block_count = len(self.pairing.blocks)
        subroute = build_subroute(list(site.pile.get("route", [])), self.run, sort=True)
        self.routes = _append_subroute(self.routes, subroute, matcher_sets, block_count)
        if "error_route" in site.pile:
            error_values = _sort_error_routes(list(site.pile["error_route"]))
            combined = {"handler": "subroute", "routes": [r for v in error_values for r in v.value["routes"]]}
            self.error_routes = _append_subroute(self.error_routes, combined, matcher_sets, block_count)
        if self.logs is not None:
            _add_site_logs(self.logs, site, hosts)

    def _add_policies(self, site: SiteBlock, hosts: list[str]) -> None:
        """The site's `tls` settings as connection policies matching its hosts by SNI."""
        if "tls.connection_policy" not in site.pile:
            specific = sorted(h for h in hosts if h and "*" not in h)
            if specific:
                self.empty_policies.append({"match": {"sni": specific}})
            return
        force_automate = bool(site.pile.get("tls.force_automate"))
        for value in site.pile["tls.connection_policy"]:
            cp = copy.deepcopy(value.value)
            policy_hosts = list(hosts)
            for h in hosts:
                if self.default_sni and h == self.default_sni:
                    policy_hosts.append("")
                    cp["default_sni"] = self.default_sni
                    break
                if self.fallback_sni and h == self.fallback_sni:
                    policy_hosts.append("")
                    cp["fallback_sni"] = self.fallback_sni
                    break
            if policy_hosts:
                cp["match"] = {"sni": sorted(policy_hosts)}
            else:
                cp.update(self._sni_defaults())
            has_settings = any(k != "match" for k in cp)
            if has_settings or (force_automate and policy_hosts):
                self.policies.append(cp)
                self.has_catch_all_policy = not policy_hosts
            elif policy_hosts:
                self.empty_policies.append(cp)

    def _sni_defaults(self) -> dict[str, str]:
        out = {}
        if self.default_sni:
            out["default_sni"] = self.default_sni
        if self.fallback_sni:
            out["fallback_sni"] = self.fallback_sni
        return out

    def _add_auto_https(self, site: SiteBlock) -> None:
        """HTTP-only hosts on a server with other ports are skipped; note whether TLS is due."""
        for addr in site.addresses:
            if _listeners_use_other_port(self.srv["listen"], self.http_port) and addr.scheme == "http" and addr.host:
                skip = self.auto_https.setdefault("skip", [])
                if addr.host not in skip:
                    skip.append(addr.host)
            has_tls = bool(site.pile.get("tls.connection_policy")) or (
                bool(addr.host) and addr.host not in self.auto_https.get("skip", [])
            )
            if addr.scheme == "https" or (addr.scheme != "http" and addr.port != self.http_port and has_tls):
                self.qualifies_for_tls = True
            self.auto_https_adds_policy = self.auto_https_adds_policy and (
                addr.port == self.https_port or (addr.port != self.http_port and bool(addr.host))
            )

    def finish(self) -> dict[str, Any]:
        srv = self.srv
        if self.logs is not None:
            if "skip_hosts" in self.logs:
                self.logs["skip_hosts"] = sorted(self.logs["skip_hosts"])
            srv["logs"] = self.logs
        if self.auto_https:
            srv["automatic_https"] = self.auto_https
        if self.error_routes:
            srv["errors"] = {"routes": self.error_routes}
        if self.routes:
            srv["routes"] = consolidate_routes(self.routes)
        _check_conflicting_schemes(srv, self.policies, self.pairing.blocks, self.http_port, self.https_port)
        policies = self._final_policies()
        if policies:
            srv["tls_connection_policies"] = policies
        return srv

    def _final_policies(self) -> list[dict[str, Any]]:
        from rws.tls.adapt import consolidate_conn_policies

        policies = _shield_client_auth_wildcards(self.policies, self.empty_policies)
        if self.qualifies_for_tls and not self.has_catch_all_policy and (
            policies or not self.auto_https_adds_policy or self.default_sni or self.fallback_sni
        ):
            policies.append(self._sni_defaults())
        try:
            return consolidate_conn_policies(policies)
        except ValueError as exc:
            key = self.pairing.blocks[0].keys[0]
            raise key.error(f"consolidating TLS connection policies: {exc}") from None


def _check_ambiguous(pairing: Pairing) -> None:
    for j, a in enumerate(pairing.blocks):
        for key in a.keys:
            for k, b in enumerate(pairing.blocks):
                if k != j and key.text in b.key_texts():
                    raise key.error(f"ambiguous site definition: {key.text}")


def block_sort_key(site: SiteBlock) -> tuple[int, int, int, int]:
    """Most specific first: catch-alls last, wildcards after exact names, longer hosts, longer paths."""
    longest_host = longest_path = ""
    wildcard = False
    for addr in site.addresses:
        if "*" in addr.host or not addr.host:
            wildcard = True
        if specificity(addr.host) > specificity(longest_host):
            longest_host = addr.host
        if specificity(addr.path) > specificity(longest_path):
            longest_path = addr.path
    host_spec = specificity(longest_host)
    if host_spec == 0:
        return (1, 0, 0, 0)
    return (0, 1 if wildcard else 0, -host_spec, -len(longest_path))


def _site_matcher_sets(site: SiteBlock) -> list[dict[str, Any]]:
    """One host (+ path) matcher set per distinct address path; none for a catch-all."""
    pairs: list[tuple[list[str], list[str]]] = []
    catch_all = False
    for addr in site.addresses:
        chosen = None
        for hosts, paths in pairs:
            if (not paths and not addr.path) or (len(paths) == 1 and paths[0] == addr.path):
                chosen = (hosts, paths)
                break
        if chosen is None:
            chosen = ([], [addr.path] if addr.path else [])
            pairs.append(chosen)
        if not addr.host and not catch_all:
            chosen[0].clear()
            catch_all = True
        if catch_all:
            continue
        if addr.host and addr.host not in chosen[0]:
            chosen[0].append(addr.host)
    sets = []
    for hosts, paths in pairs:
        matcher: dict[str, Any] = {}
        if hosts:
            matcher["host"] = hosts
        if paths:
            matcher["path"] = paths
        if matcher:
            sets.append(matcher)
    return sets


def _append_subroute(route_list: list[Any], subroute: dict[str, Any], matcher_sets: list[Any], block_count: int) -> list[Any]:
    sub_routes = subroute.get("routes", [])
    if not matcher_sets and not sub_routes and "errors" not in subroute:
        return route_list
    wrap = True
    if not matcher_sets and block_count == 1:
        wrap = any("host" in ms for r in sub_routes for ms in r.get("match", []))
    if not wrap:
        return [*route_list, *sub_routes]
    route: dict[str, Any] = {}
    if matcher_sets:
        route["match"] = matcher_sets
    if sub_routes or "errors" in subroute:
        route["handle"] = [subroute]
    if route:
        route["terminal"] = True
        return [*route_list, route]
    return route_list


def _add_named_routes(srv: dict[str, Any], blocks: list[SiteBlock], named_routes: dict[str, tuple[dict[str, Any], list[str]]]) -> None:
    for site in blocks:
        for value in site.pile.get("named_route", []):
            pending = [value.value]
            while pending:
                name = pending.pop(0)
                if name in srv.get("named_routes", {}):
                    continue
                if name not in named_routes:
                    raise site.keys[0].error(f"cannot invoke named route '{name}', which was not defined")
                route, invoked = named_routes[name]
                srv.setdefault("named_routes", {})[name] = route
                pending.extend(invoked)


def _add_site_logs(logs: dict[str, Any], site: SiteBlock, hosts: list[str]) -> None:
    log_hosts = site.hosts_from_keys(logger_mode=True)
    custom = site.pile.get("custom_log", [])
    for value in custom:
        ncl = value.value
        if ncl.no_hostname:
            continue
        names = logs.setdefault("logger_names", {})
        if site.has_host_catch_all_key() and not ncl.hostnames:
            logs["default_logger_name"] = ncl.name
            if not names:
                del logs["logger_names"]
        elif ncl.hostnames:
            for h in ncl.hostnames:
                names.setdefault(h, []).append(ncl.name)
        else:
            for h in log_hosts:
                try:
                    host, _ = split_host_port(h)
                except AddressError:
                    host = h
                names.setdefault(host, []).append(ncl.name)
    if not custom:
        if not hosts:
            logs["skip_unmapped_hosts"] = True
        logs.setdefault("skip_hosts", []).extend(log_hosts)
        if not logs["skip_hosts"]:
            del logs["skip_hosts"]


def _listeners_use_other_port(addresses: list[str], port: str) -> bool:
    try:
        wanted = int(port)
    except ValueError:
        return False
    for lnaddr in addresses:
        network, slash, rest = lnaddr.partition("/")
        if slash and network.startswith(("unix", "fd")):
            continue
        text = rest if slash else lnaddr
        try:
            _, port_text = split_host_port(text)
        except AddressError:
            continue
        start, _, end = port_text.partition("-")
        try:
            lo, hi = int(start), int(end or start)
        except ValueError:
            continue
        if wanted > hi or wanted < lo:
            return True
    return False


def _check_conflicting_schemes(srv: dict[str, Any], policies: list[Any], blocks: list[SiteBlock], http_port: str,
                               https_port: str) -> None:
    kind = ""
    listen = "[" + " ".join(srv["listen"]) + "]"
    for site in blocks:
        for addr in site.addresses:
            if addr.scheme == "http" or addr.port == http_port:
                want = "HTTP"
            elif addr.scheme == "https" or addr.port == https_port or policies:
                want = "HTTPS"
            elif not addr.host:
                want = "HTTP"
            else:
                continue
            key = site.keys[site.addresses.index(addr)]
            if want == "HTTP":
                if kind == "HTTPS":
                    message = (f"server listening on {listen} is configured for HTTPS and cannot natively "
                               f"multiplex HTTP and HTTPS: {addr.original}")
                    if not addr.scheme and not addr.host:
                        message += " (try specifying https:// in the address)"
                    raise key.error(message)
                if policies:
                    raise key.error(f"server listening on {listen} is HTTP, but attempts to configure TLS connection policies")
            elif kind == "HTTP":
                raise key.error(f"server listening on {listen} is configured for HTTP and cannot natively multiplex "
                                f"HTTP and HTTPS: {addr.original}")
            kind = want


def _shield_client_auth_wildcards(policies: list[dict[str, Any]], empty_policies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A host under a client-auth wildcard policy, whose own site has no TLS settings,
    gets a copy of that policy without client auth placed before it."""
    from rws.tls.names import match_wildcard

    wildcards: list[list[str]] = []
    for cp in policies:
        names = (cp.get("match") or {}).get("sni") if "client_authentication" in cp else None
        wildcards.append([n for n in names or [] if "*" in n])
    shielded: list[list[str]] = [[] for _ in policies]
    for ecp in empty_policies:
        for host in (ecp.get("match") or {}).get("sni") or []:
            for i, names in enumerate(wildcards):
                if any(match_wildcard(host, n) for n in names):
                    shielded[i].append(host)
                    break
    out = list(policies)
    for i in range(len(policies) - 1, -1, -1):
        if not shielded[i]:
            continue
        shield = {k: v for k, v in policies[i].items() if k != "client_authentication"}
        shield["match"] = {"sni": sorted(dict.fromkeys(sorted(shielded[i])))}
        out.insert(i, shield)
    return out


def _sort_error_routes(values: list[Any]) -> list[Any]:
    """Caddy's order for several `handle_errors` in one site: an insertion sort whose
    comparison moves each block left unless it has no status matcher and its neighbour
    has one. Blocks with codes thus come first, later ones before earlier ones."""
    items = list(values)
    for i in range(1, len(items)):
        j = i
        while j > 0 and not (not _has_match(items[j]) and _has_match(items[j - 1])):
            items[j], items[j - 1] = items[j - 1], items[j]
            j -= 1
    return items


def _has_match(value: Any) -> bool:
    return bool(value.value["routes"][0].get("match"))


def _apply_server_options(servers: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    server_opts = options.get("servers")
    if not server_opts:
        return servers
    names: set[str] = set()
    for opts in server_opts:
        if opts.name:
            if opts.name in names:
                raise RwsfileError("", 0, f"cannot use duplicate server name '{opts.name}'")
            names.add(opts.name)
    renames: dict[str, str] = {}
    for key, srv in servers.items():
        opts = next((o for o in server_opts if not o.listener_address or o.listener_address in srv["listen"]), None)
        if opts is None:
            continue
        for field in SERVER_OPTION_FIELDS:
            srv.pop(field, None)
        srv.update(copy.deepcopy(opts.fields))
        if opts.log_fields:
            srv.setdefault("logs", {}).update(opts.log_fields)
        if opts.name:
            renames[key] = opts.name
    if renames:
        servers = {renames.get(k, k): v for k, v in servers.items()}
    return servers
