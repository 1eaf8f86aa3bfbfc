"""`rewrite`, `uri`, `method` and `try_files`: the rewrite handler."""

from __future__ import annotations

import pytest

from rws.config.decode import decode
from rws.errors import ConfigError
from rws.handlers.rewrite import RewriteConfig, regexp_problem


@pytest.mark.parametrize("text", [
    ":80\nrewrite /a /b\n",
    ":80\nrewrite * /b?{query}&x=1\n",
    ":80\n@m path /m\nrewrite @m /b\nrewrite * /c\n",
    ":80\nrewrite /docs/json/* /docs/json/index.html\nrewrite /docs/* /docs/index.html\n",
    ":80\nmethod POST\n",
    ":80\nmethod /x get\n",
    ":80\nuri strip_prefix /api\n",
    ":80\nuri /x strip_suffix .php\n",
    ":80\nuri replace a b\n",
    ":80\nuri replace a b 2\n",
    ":80\nuri replace a b 0\n",
    ":80\nuri replace a b -1\n",
    ":80\nuri path_regexp ^/a(.*) /b$1\n",
    ":80\ntry_files {path} {path}/ /index.html\n",
    ":80\ntry_files {path} /index.php?{query}&p={path} {\n\tpolicy first_exist\n}\n",
    ":80\ntry_files a?x b c?y d\n",
    ":80\ntry_files {path} {\n\tpolicy smallest_size\n}\n",
])
def test_adapts_like_caddy(same_as_caddy, text):
    same_as_caddy(text)


def test_rewrite_with_one_argument_has_no_matcher(site_handlers):
    [(handler, match)] = site_handlers(":80\nrewrite /index.html\n")
    assert handler == {"handler": "rewrite", "uri": "/index.html"}
    assert match == []


def test_strip_prefix_is_kept_as_written(site_handlers):
    # the leading slash is added when the request is handled, not by the adapter
    [(handler, _)] = site_handlers(":80\nuri strip_prefix api\n")
    assert handler == {"handler": "rewrite", "strip_path_prefix": "api"}


def test_every_query_operation(site_handlers):
    [(handler, _)] = site_handlers(":80\nuri query {\n\t+a 1\n\t-b\n\tc>d\n\te 5\n\tf ^x$ y\n}\n")
    assert handler["query"] == {
        "add": [{"key": "a", "val": "1"}],
        "delete": ["b"],
        "rename": [{"key": "c", "val": "d"}],
        "set": [{"key": "e", "val": "5"}],
        "replace": [{"key": "f", "search_regexp": "^x$", "replace": "y"}],
    }


def test_query_operation_on_the_line(site_handlers):
    [(handler, _)] = site_handlers(":80\nuri query page 1\n")
    assert handler == {"handler": "rewrite", "query": {"set": [{"key": "page", "val": "1"}]}}


def test_try_files_policy_first_exist_fallback(site_handlers):
    [(handler, match)] = site_handlers(":80\ntry_files {path} /index.html {\n\tpolicy first_exist_fallback\n}\n")
    assert match == [[{"file": {"try_files": ["{http.request.uri.path}", "/index.html"], "try_policy": "first_exist_fallback"}}]]
    assert handler == {"handler": "rewrite", "uri": "{http.matchers.file.relative}"}


@pytest.mark.parametrize("text, line, message", [
    (":80\nrewrite\n", 2, "too few arguments; must have at least a rewrite URI"),
    (":80\nrewrite a b c\n", 2, "too many arguments; should only be a matcher and a URI"),
    (":80\nrewrite a b\n", 2, "expected a matcher before the rewrite URI, got 'a'"),
    (":80\nrewrite /a {\n\tx\n}\n", 2, "rewrite does not take a block"),
    (":80\nmethod\n", 2, "wrong argument count or unexpected line ending after 'method'"),
    (":80\nmethod A B\n", 2, "wrong argument count or unexpected line ending after 'B'"),
    (":80\nuri\n", 2, "wrong argument count or unexpected line ending after 'uri'"),
    (":80\nuri strip_prefix\n", 2, "wrong argument count"),
    (":80\nuri strip_prefix a b\n", 2, "wrong argument count"),
    (":80\nuri strip_prefx /a\n", 2, "unrecognized URI manipulation 'strip_prefx' (did you mean 'strip_prefix'?)"),
    (":80\nuri replace a\n", 2, "wrong argument count"),
    (":80\nuri replace a b x\n", 2, "limit must be an integer; invalid: 'x'"),
    (":80\nuri path_regexp a\n", 2, "wrong argument count"),
    (":80\nuri path_regexp ( x\n", 2, "invalid regular expression '('"),
    (":80\nuri strip_prefix /a {\n\tx\n}\n", 2, "uri strip_prefix does not take a block"),
    (":80\nuri query a b c d\n", 2, "wrong argument count"),
    (":80\nuri query a\n", 2, "wrong argument count"),
    (":80\nuri query -a b\n", 2, "wrong argument count"),
    (":80\nuri query +a\n", 2, "wrong argument count"),
    (":80\nuri query a>b c\n", 2, "wrong argument count"),
    (":80\nuri query a ( b\n", 2, "invalid regular expression '('"),
    (":80\nuri query a b {\n\tc d\n}\n", 3, "cannot specify uri query rewrites in both argument and block"),
    (":80\nuri query {\n\t+a\n}\n", 3, "wrong argument count"),
    (":80\ntry_files\n", 2, "wrong argument count or unexpected line ending after 'try_files'"),
    (":80\ntry_files a {\n\tpolicy nope\n}\n", 3, "unrecognized try policy: nope"),
    (":80\ntry_files a {\n\tpolicy first_exist\n\tpolicy first_exist\n}\n", 4, "try policy already configured"),
    (":80\ntry_files a {\n\tpolcy first_exist\n}\n", 3, "unrecognized subdirective 'polcy' (did you mean 'policy'?)"),
    (":80\ntry_files a {\n\tpolicy\n}\n", 3, "wrong argument count"),
])
def test_bad_input_names_the_line(adapt_error, text, line, message):
    assert message in adapt_error(text, line).message


@pytest.mark.parametrize("pattern, ok", [
    ("^/a(.*)$", True),
    ("(?<name>x)", True),  # Go spelling of a named group
    ("(?P<name>x)", True),
    ("a\\z", True),
    ("\\p{Greek}+", False),  # RE2-only syntax rws cannot run
    ("(", False),
    ("[a-", False),
])
def test_regexp_problem(pattern, ok):
    assert (regexp_problem(pattern) is None) is ok


def test_config_decodes_every_field():
    value = {"method": "GET", "uri": "/x", "strip_path_prefix": "/a", "strip_path_suffix": ".b",
             "uri_substring": [{"find": "a", "replace": "b", "limit": 1}], "path_regexp": [{"find": "a", "replace": "b"}],
             "query": {"rename": [{"key": "a", "val": "b"}], "set": [{"key": "c"}], "add": [{"key": "d", "val": "e"}],
                       "replace": [{"key": "f", "search_regexp": "x", "replace": "y"}], "delete": ["g"]}}
    config = decode(RewriteConfig, value, "h")
    assert config.query.delete == ("g",)


@pytest.mark.parametrize("value, path", [
    ({"path_regexp": [{"find": "", "replace": "x"}]}, "h.path_regexp[0].find"),
    ({"path_regexp": [{"find": "(", "replace": "x"}]}, "h.path_regexp[0].find"),
    ({"query": {"replace": [{"key": "a", "search_regexp": "["}]}}, "h.query.replace[0].search_regexp"),
    ({"uri_substring": [{"find": "a", "limit": "1"}]}, "h.uri_substring[0].limit"),
    ({"url": "/x"}, "h.url"),
])
def test_config_rejects_bad_values(value, path):
    with pytest.raises(ConfigError) as info:
        decode(RewriteConfig, value, "h")
    assert info.value.path == path
