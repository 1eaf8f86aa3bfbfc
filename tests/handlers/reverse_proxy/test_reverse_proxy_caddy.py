"""`reverse_proxy` constructs on which Caddy 2.6.2 and the latest Caddy agree: rws must
adapt them exactly as the installed `caddy adapt` does, and the result must decode."""

from __future__ import annotations

from typing import Any

import pytest

from rws.config.decode import Module, decode_module

CASES = {
    "dynamic_a": """\
:8080 {
	reverse_proxy {
		dynamic a backend.internal 8080
	}
	reverse_proxy /b {
		dynamic a {
			name backend.internal
			port 9000
			refresh 30s
			resolvers 10.0.0.53
			dial_timeout 1s
			dial_fallback_delay 200ms
		}
	}
}
""",
    "dynamic_multi": """\
:8080 {
	reverse_proxy {
		dynamic multi {
			a backend1.internal 80
			srv _http._tcp.backend2.internal
		}
	}
}
""",
    "dynamic_srv": """\
:8080 {
	reverse_proxy {
		dynamic srv {
			service http
			proto tcp
			name example.com
			refresh 2m
		}
	}
}
""",
    "h2c_upstream": """\
:8080 {
	reverse_proxy h2c://localhost:8080 {
		transport http {
			dial_timeout 2s
		}
	}
}
""",
    "handle_response": """\
:8080 {
	reverse_proxy localhost:1 {
		@error status 500 503
		handle_response @error {
			respond "upstream failed: {rp.status_code}" 502
		}
		@redirect {
			status 3xx
			header Location *
		}
		handle_response @redirect {
			redir {rp.header.Location}
		}
		handle_response {
			copy_response
		}
	}
}
""",
    "handle_response_copy": """\
:8080 {
	reverse_proxy localhost:1 {
		@ok status 200
		handle_response @ok {
			copy_response_headers {
				exclude Set-Cookie
			}
			copy_response 201
		}
		@created status 201
		handle_response @created {
			copy_response {
				status 202
			}
		}
		replace_status 404
	}
}
""",
    "handle_response_request_matchers": """\
:8080 {
	reverse_proxy localhost:1 {
		@bad status 4xx 5xx
		handle_response @bad {
			@json header Accept application/json
			respond @json `{"error": {rp.status_code}}` 502
			respond "error {rp.status_code}" 502
		}
	}
}
""",
    "header_ops_prefixes": """\
:8080 {
	reverse_proxy localhost:1 {
		header_up +X-A a b
		header_up -X-B b c
		header_up X-C
		header_down +Set-Cookie x
	}
}
""",
    "header_up_lints": """\
:8080 {
	reverse_proxy localhost:1 {
		header_up X-Forwarded-For {remote_host}
		header_up X-Forwarded-Proto {scheme}
		header_up X-Forwarded-Host {host}
	}
}
""",
    "headers": """\
:8080 {
	reverse_proxy localhost:1 {
		header_up Host {upstream_hostport}
		header_up X-Real-IP {remote_host}
		header_up +X-Multi one
		header_up +X-Multi two
		header_up -Cookie
		header_up x-lower value
		header_up Referer "^http://(.*)" "https://$1"
		header_down -Server
		header_down Strict-Transport-Security "max-age=31536000;"
		header_down Location "^http://" "https://"
	}
}
""",
    "health_active": """\
:8080 {
	reverse_proxy localhost:1 {
		health_uri /healthz?full=1
		health_port 8081
		health_interval 15s
		health_timeout 3s
		health_status 200
		health_body "^ok$"
		health_headers {
			Host internal.example
			X-Probe a b
			X-Empty
		}
	}
}
""",
    "health_passive": """\
:8080 {
	reverse_proxy localhost:1 {
		fail_duration 1m
		max_fails 2
		unhealthy_status 500 502 5xx
		unhealthy_latency 3s
		unhealthy_request_count 50
	}
}
""",
    "health_path_deprecated": """\
:8080 {
	reverse_proxy localhost:1 {
		health_path /health
	}
}
""",
    "health_status_class": """\
:8080 {
	reverse_proxy localhost:1 {
		health_uri /
		health_status 3xx
	}
}
""",
    "https_upstream": """\
:8080 {
	reverse_proxy https://example.com https://example.org:8443
}
""",
    "https_with_transport": """\
:8080 {
	reverse_proxy https://localhost {
		transport http {
			tls_insecure_skip_verify
			versions 2
		}
	}
}
""",
    "lb_policies": """\
:8080 {
	reverse_proxy localhost:1 localhost:2 {
		lb_policy random
	}
	reverse_proxy /a localhost:1 localhost:2 {
		lb_policy random_choose 3
	}
	reverse_proxy /b localhost:1 {
		lb_policy least_conn
	}
	reverse_proxy /c localhost:1 {
		lb_policy round_robin
	}
	reverse_proxy /d localhost:1 {
		lb_policy first
	}
	reverse_proxy /e localhost:1 {
		lb_policy ip_hash
	}
	reverse_proxy /f localhost:1 {
		lb_policy uri_hash
	}
	reverse_proxy /g localhost:1 {
		lb_policy header X-User
	}
	reverse_proxy /h localhost:1 {
		lb_policy cookie
	}
	reverse_proxy /i localhost:1 {
		lb_policy cookie sticky s3cret
	}
}
""",
    "lb_retries": """\
:8080 {
	reverse_proxy localhost:1 localhost:2 {
		lb_try_duration 5s
		lb_try_interval 250ms
		lb_retry_match {
			method GET HEAD
		}
	}
}
""",
    "lb_retry_match_expression": """\
:8080 {
	reverse_proxy localhost:1 localhost:2 {
		lb_try_duration 1s
		lb_retry_match path /idempotent/*
	}
}
""",
    "matcher_forms": """\
:8080 {
	@api path /api/*
	reverse_proxy @api localhost:9000
	reverse_proxy /static/* localhost:9001
	reverse_proxy * localhost:9002
}
""",
    "method_rewrite": """\
:8080 {
	reverse_proxy localhost:1 {
		method POST
		rewrite /new{uri}
	}
}
""",
    "multiple_directives": """\
example.com {
	reverse_proxy /api/* localhost:9000
	reverse_proxy /api/v2/* localhost:9002
	reverse_proxy localhost:8000
	header X-Frame-Options DENY
}
""",
    "port_placeholder": """\
:8080 {
	reverse_proxy localhost:{http.request.header.X-Port}
}
""",
    "replace_status": """\
:8080 {
	reverse_proxy localhost:1 {
		@gone status 410
		replace_status @gone 404
	}
}
""",
    "site_with_host": """\
example.com, www.example.com {
	encode gzip
	reverse_proxy localhost:3000 {
		header_up X-Forwarded-Port {http.request.port}
	}
}
""",
    "streaming": """\
:8080 {
	reverse_proxy localhost:1 {
		flush_interval 100ms
	}
	reverse_proxy /ws localhost:2 {
		flush_interval -1
	}
	reverse_proxy /n localhost:3 {
		flush_interval 1000
	}
}
""",
    "to_subdirective": """\
:8080 {
	reverse_proxy {
		to localhost:9000
		to localhost:9001 localhost:9002
	}
}
""",
    "transport_empty": """\
:8080 {
	reverse_proxy localhost:1 {
		transport http
	}
	reverse_proxy /x localhost:1 {
		transport http {
		}
	}
}
""",
    "transport_http_full": """\
:8080 {
	reverse_proxy localhost:1 {
		transport http {
			read_buffer 8KiB
			write_buffer 16KB
			max_response_header 1MB
			dial_timeout 10s
			dial_fallback_delay 100ms
			response_header_timeout 30s
			expect_continue_timeout 1s
			resolvers 1.1.1.1 8.8.8.8:53
			tls
			tls_client_auth client.example.com
			tls_insecure_skip_verify
			tls_timeout 10s
			tls_trusted_ca_certs ca1.pem ca2.pem
			tls_server_name backend.internal
			tls_renegotiation once
			tls_except_ports 8080 8081
			keepalive 90s
			keepalive_interval 15s
			keepalive_idle_conns 100
			keepalive_idle_conns_per_host 10
			versions 1.1 2
			compression off
			max_conns_per_host 64
		}
	}
}
""",
    "transport_keepalive_off": """\
:8080 {
	reverse_proxy localhost:1 {
		transport http {
			keepalive off
		}
	}
}
""",
    "transport_ports": """\
:8080 {
	reverse_proxy localhost:1 {
		transport http {
			tls_except_ports 80
			keepalive 0
			dial_timeout 0s
		}
	}
}
""",
    "transport_tls_only": """\
:8080 {
	reverse_proxy localhost:443 {
		transport http {
			tls
		}
	}
}
""",
    "trusted_proxies": """\
:8080 {
	reverse_proxy localhost:1 {
		trusted_proxies 10.0.0.0/8 192.168.1.1 private_ranges
	}
}
""",
    "unix_h2c": """\
:8080 {
	reverse_proxy unix+h2c//run/grpc.sock
}
""",
    "upstream_placeholders": """\
:8080 {
	reverse_proxy {http.request.header.X-Backend}
	reverse_proxy /a localhost:{http.request.header.X-Port}
	reverse_proxy /b {http.request.header.X-Host}:8080
}
""",
    "upstreams_forms": """\
:8080 {
	reverse_proxy localhost:9000 10.0.0.1 [::1]:9001 :9002
	reverse_proxy /http http://example.com http://example.com:8080 http://[::1]
	reverse_proxy /unix unix//run/app.sock
	reverse_proxy /net tcp/localhost:9003
}
""",
}

PROXY_FAMILY = ("reverse_proxy", "copy_response", "copy_response_headers")


def proxy_handlers(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every handler of the proxy family in `routes`, looking inside subroutes and handle_response routes."""
    found = []
    for route in routes:
        for handler in route.get("handle", []):
            if handler["handler"] in PROXY_FAMILY:
                found.append(handler)
            found.extend(proxy_handlers(handler.get("routes", [])))
            for response_handler in handler.get("handle_response", []) if handler["handler"] == "reverse_proxy" else []:
                found.extend(proxy_handlers(response_handler.get("routes", [])))
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_adapts_like_caddy_and_decodes(same_as_caddy, name):
    config = same_as_caddy(CASES[name])
    handlers = [h for server in config["apps"]["http"]["servers"].values() for h in proxy_handlers(server["routes"])]
    assert handlers, "the case holds no reverse_proxy handler"
    for i, handler in enumerate(handlers):
        decode_module(Module("http.handlers", "handler"), handler, f"handler[{i}]")
