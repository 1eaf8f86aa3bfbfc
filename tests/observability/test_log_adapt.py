"""The `log` directive and the `log` global option, through the real adapter.

Forms that Caddy 2.6.2 and the latest Caddy adapt alike are compared with the installed
`caddy adapt`; the latest Caddy's newer forms are pinned by the golden pairs
tests/rwsfile/cases/log_*.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rws import registry
from rws.config.decode import decode
from rws.config.model import CustomLogConfig, LoggingConfig
from rws.errors import RwsfileError
from rws.rwsfile.adapt import adapt_text

CADDY = shutil.which("caddy")


def adapt(text: str) -> dict[str, Any]:
    config, _warnings = adapt_text(text)
    return config


def _sorted_default_exclude(config: dict[str, Any]) -> dict[str, Any]:
    """2.6.2 keeps the default log's exclude list in insertion order; the latest sorts it."""
    default = config.get("logging", {}).get("logs", {}).get("default")
    if default and "exclude" in default:
        default["exclude"] = sorted(default["exclude"])
    return config


def caddy_adapt(text: str, tmp_path: Path) -> dict[str, Any]:
    source = tmp_path / "Caddyfile"
    source.write_text(text, "utf-8")
    result = subprocess.run([CADDY or "caddy", "adapt", "--config", str(source)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


AGREED = {
    "global_console_encoder": """{
	log {
		output stderr
		format console {
			time_format iso8601
			level_key lvl
			message_key ""
		}
		level WARN
	}
}
:80 {
	respond "x"
}
""",
    "global_named_net_writer": """{
	log second {
		output net localhost:9999 {
			dial_timeout 5s
		}
		include http.log.access
		exclude http.log.access.internal
	}
}
:80 {
	respond "x"
}
""",
    "site_file_writer_and_json": """:80 {
	log {
		output file /tmp/x.log {
			roll_size 5MiB
			roll_keep 3
			roll_keep_for 48h
			roll_disabled
			roll_local_time
			roll_uncompressed
		}
		format json {
			message_key message
			time_local
			duration_format ms
		}
		level debug
	}
}
""",
    "site_filter_encoder": """:80 {
	log {
		format filter {
			wrap console
			fields {
				request>headers>Authorization delete
				request>remote_ip ip_mask {
					ipv4 16
					ipv6 64
				}
				request>uri query {
					replace token REDACTED
					hash id
					delete debug
				}
				request>headers>Cookie cookie {
					delete session
				}
				request>headers>X-Secret hash
				request>headers>X-Re regexp ^a b
				request>headers>X-Replace replace gone
			}
		}
	}
}
""",
    "two_sites_count_loggers": """:80 {
	log {
		output stdout
	}
}
:81 {
	log {
		output stderr
	}
}
""",
    "global_and_site": """{
	log {
		output stdout
		format json
	}
}
:80 {
	log {
		output discard
	}
}
""",
}


@pytest.mark.skipif(CADDY is None, reason="caddy is not installed")
@pytest.mark.parametrize("name", sorted(AGREED))
def test_log_adapts_like_caddy(name: str, tmp_path: Path) -> None:
    text = AGREED[name]
    assert _sorted_default_exclude(adapt(text)) == _sorted_default_exclude(caddy_adapt(text, tmp_path))


# --- the latest Caddy's forms ---------------------------------------------------------------


def logs_of(text: str) -> dict[str, Any]:
    logs: dict[str, Any] = adapt(text)["logging"]["logs"]
    return logs


def test_named_site_logger_includes_its_access_logs() -> None:
    logs = logs_of(":80 {\n\tlog access {\n\t\toutput stdout\n\t}\n}\n")
    assert logs["access"] == {"writer": {"output": "stdout"}, "include": ["http.log.access.access"]}
    assert logs["default"] == {"exclude": ["http.log.access.access"]}


def test_unnamed_loggers_are_numbered_across_the_whole_file() -> None:
    text = ":80 {\n\tlog {\n\t\tlevel INFO\n\t}\n}\n:81 {\n\tlog {\n\t\tlevel ERROR\n\t}\n\tlog {\n\t\tlevel WARN\n\t}\n}\n"
    logs = logs_of(text)
    assert [logs[f"log{i}"]["level"] for i in range(3)] == ["INFO", "ERROR", "WARN"]


def test_sampling_block() -> None:
    logs = logs_of(":80 {\n\tlog {\n\t\tsampling {\n\t\t\tinterval 1s\n\t\t\tfirst 5\n\t\t}\n\t}\n}\n")
    assert logs["log0"]["sampling"] == {"interval": 1_000_000_000, "first": 5}


def test_ip_mask_takes_inline_bits() -> None:
    logs = logs_of(":80 {\n\tlog {\n\t\tformat filter {\n\t\t\trequest>remote_ip ip_mask 16 32\n\t\t}\n\t}\n}\n")
    assert logs["log0"]["encoder"]["fields"]["request>remote_ip"] == {"filter": "ip_mask", "ipv4_cidr": 16, "ipv6_cidr": 32}


def test_file_writer_dir_mode_and_compression() -> None:
    text = ":80 {\n\tlog {\n\t\toutput file /l.log {\n\t\t\tmode 640\n\t\t\tdir_mode inherit\n\t\t\troll_compression ZSTD\n\t\t}\n\t}\n}\n"
    writer = logs_of(text)["log0"]["writer"]
    assert writer == {"output": "file", "filename": "/l.log", "mode": "0640", "dir_mode": "inherit", "roll_compression": "zstd"}


def test_global_log_default_name_and_extra_logs_accumulate() -> None:
    text = "{\n\tlog {\n\t\tlevel ERROR\n\t}\n\tlog extra {\n\t\toutput stdout\n\t}\n}\n"
    assert adapt(text)["logging"]["logs"] == {"default": {"level": "ERROR"}, "extra": {"writer": {"output": "stdout"}}}


# --- the JSON decodes with the config classes -------------------------------------------------


@pytest.mark.parametrize("name", sorted(AGREED))
def test_adapted_logging_decodes(name: str) -> None:
    logging_json = adapt(AGREED[name])["logging"]
    config = decode(LoggingConfig, logging_json, "logging")
    for log_name, log in logging_json["logs"].items():
        for key, namespace, inline in (("writer", "caddy.logging.writers", "output"), ("encoder", "caddy.logging.encoders", "format")):
            if key in log:
                spec = registry.find(f"{namespace}.{log[key][inline]}")
                assert spec is not None
                decode(spec.config, {k: v for k, v in log[key].items() if k != inline}, f"logging.logs.{log_name}.{key}")
        assert isinstance(config.logs[log_name], CustomLogConfig)


# --- errors ----------------------------------------------------------------------------------


def site_error(block: str) -> str:
    with pytest.raises(RwsfileError) as info:
        adapt(f":80 {{\n\tlog {{\n{block}\n\t}}\n}}\n")
    return str(info.value)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("\t\tlevel LOUD", "Rwsfile:3: unrecognized log level 'LOUD'"),
        ("\t\tlevel", "Rwsfile:3: wrong argument count"),
        ("\t\toutput stdoot", "Rwsfile:3: unknown log writer 'stdoot' (did you mean 'stdout'?)"),
        ("\t\toutput", "Rwsfile:3: wrong argument count"),
        ("\t\tformat jsn", "Rwsfile:3: unknown log encoder 'jsn' (did you mean 'json'?)"),
        ("\t\tformat json extra", "Rwsfile:3: wrong argument count"),
        ("\t\tformat json {\n\t\t\tmesage_key m\n\t\t}", "Rwsfile:4: unrecognized subdirective 'mesage_key' (did you mean 'message_key'?)"),
        ("\t\toutptu stdout", "Rwsfile:3: unrecognized subdirective 'outptu' (did you mean 'output'?)"),
        ("\t\tinclude admin", "Rwsfile:3: include is not allowed in the log directive"),
        ("\t\texclude admin", "Rwsfile:3: exclude is not allowed in the log directive"),
        ("\t\tlevel INFO\n\t\tlevel DEBUG", "Rwsfile:4: 'level' subdirective specified more than once in the same log block"),
        ("\t\tno_hostname x", "Rwsfile:3: wrong argument count"),
        ("\t\thostnames", "Rwsfile:3: wrong argument count"),
        ("\t\tcore mock", "Rwsfile:3: unknown log core module 'mock'"),
        ("\t\tsampling {\n\t\t\tfirst many\n\t\t}", "Rwsfile:4: failed to parse first"),
        ("\t\tsampling {\n\t\t\tinterval soon\n\t\t}", "Rwsfile:4: failed to parse interval"),
        ("\t\tsampling {\n\t\t\tfirst 1\n\t\t\tfirst 2\n\t\t}", "Rwsfile:5: 'first' specified more than once in the same sampling block"),
        ("\t\toutput file", "Rwsfile:3: wrong argument count"),
        ("\t\toutput file /a /b", "Rwsfile:3: wrong argument count"),
        ("\t\toutput file /a {\n\t\t\tmode 0999\n\t\t}", "Rwsfile:4: parsing mode: invalid file mode '0999'"),
        ("\t\toutput file /a {\n\t\t\troll_size lots\n\t\t}", "Rwsfile:4: parsing size: invalid size 'lots'"),
        ("\t\toutput file /a {\n\t\t\troll_compression lz4\n\t\t}", "Rwsfile:4: parsing roll_compression: must be 'none', 'gzip' or 'zstd'"),
        ("\t\toutput file /a {\n\t\t\troll_keep_for -1d\n\t\t}", "Rwsfile:4: negative roll_keep_for duration"),
        ("\t\toutput file /a {\n\t\t\troll_minutes 5,,6\n\t\t}", "Rwsfile:4: parsing roll_minutes: empty value"),
        ("\t\toutput file /a {\n\t\t\troll_sise 1MB\n\t\t}", "Rwsfile:4: unrecognized subdirective 'roll_sise' (did you mean 'roll_size'?)"),
        ("\t\toutput net", "Rwsfile:3: wrong argument count"),
        ("\t\toutput net :1 {\n\t\t\tdial_timeout x\n\t\t}", "Rwsfile:4: failed to parse dial_timeout"),
        ("\t\tformat filter {\n\t\t\ta regexp x y\n\t\t\ta delete\n\t\t}", "Rwsfile:5: cannot mix regexp filters with other filter types for field a"),
        ("\t\tformat filter {\n\t\t\ta delete\n\t\t\ta hash\n\t\t}", "Rwsfile:5: field a already has a filter"),
        ("\t\tformat filter {\n\t\t\ta blur\n\t\t}", "Rwsfile:4: unknown field filter 'blur'"),
        ("\t\tformat filter {\n\t\t\ta regexp (x y\n\t\t}", "Rwsfile:4: compiling matcher regexp '(x'"),
        ("\t\tformat filter {\n\t\t\ta ip_mask 1 2 3\n\t\t}", "Rwsfile:4: too many arguments"),
        ("\t\tformat filter {\n\t\t\ta query {\n\t\t\t\tblank x\n\t\t\t}\n\t\t}", "Rwsfile:5: unrecognized subdirective 'blank'"),
        ("\t\tformat filter {\n\t\t\ta multi_regexp\n\t\t}", "Rwsfile:4: multi_regexp filter requires at least one regexp operation"),
        ("\t\tformat filter {\n\t\t\twrap jsonn\n\t\t}", "Rwsfile:4: unknown log encoder 'jsonn'"),
    ],
)
def test_bad_log_block_is_an_error_at_its_line(block: str, message: str) -> None:
    assert message in site_error(block)


def test_log_directive_takes_one_name() -> None:
    with pytest.raises(RwsfileError, match=r"Rwsfile:2: wrong argument count"):
        adapt(":80 {\n\tlog a b\n}\n")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("\tlog {\n\t\thostnames a.com\n\t}", "Rwsfile:3: hostnames is not allowed in the log global options"),
        ("\tlog x\n\tlog x", "Rwsfile:3: duplicate global log option for: x"),
        ("\tlog\n\tlog default", "Rwsfile:3: duplicate global log option for: default"),
        ("\tlog a b", "Rwsfile:2: wrong argument count"),
        ("\tlog {\n\t\tlevel verbose\n\t}", "Rwsfile:3: unrecognized log level 'verbose'"),
        ("\tlog {\n\t\toutput cloud\n\t}", "Rwsfile:3: unknown log writer 'cloud'"),
    ],
)
def test_bad_global_log_is_an_error_at_its_line(options: str, message: str) -> None:
    with pytest.raises(RwsfileError) as info:
        adapt("{\n" + options + "\n}\n:80 {\n\trespond x\n}\n")
    assert message in str(info.value)
