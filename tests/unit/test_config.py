"""Configuration: built from a mapping, every problem reported at once, secrets never shown."""

from __future__ import annotations

import base64

import pytest

from authsvc.config import ConfigError, Settings, redacted_url
from authsvc.policy import BindingMode, SigningMode
from tests.support.tokens import DUMMY_SECRET, DUMMY_SECRET_B64

BASE = {"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}


def problems(env: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    return raised.value.problems


def test_defaults_are_the_documented_ones() -> None:
    assert Settings.from_env(BASE) == Settings(
        secret=DUMMY_SECRET,
        token_header="Approov-Token",
        binding_headers=("Authorization",),
        binding_mode=BindingMode.REQUIRED,
        abort_on_invalid_token=True,
        abort_on_invalid_binding=True,
        logging_enabled=True,
        allow_status=204,
        leeway_seconds=0,
        issuer=None,
        audience=None,
        signing_mode=SigningMode.OFF,
        signature_max_age_seconds=60,
        signature_clock_skew_seconds=0,
        abort_on_invalid_signature=True,
        public_base_url=None,
    )


@pytest.mark.parametrize("value", [None, "", "   "])
def test_settings_without_a_key_are_settings_the_keys_are_loaded_later(value: str | None) -> None:
    env = {} if value is None else {"APPROOV_BASE64_SECRET": value}
    assert Settings.from_env(env).secret is None


def test_secret_shorter_than_32_bytes_is_a_config_error() -> None:
    short = base64.b64encode(b"x" * 31).decode()
    (problem,) = problems({"APPROOV_BASE64_SECRET": short})
    assert "31 bytes" in problem


@pytest.mark.parametrize("value", ["not base64!", "abc$", "====", "YWJj\x00"])
def test_secret_that_is_not_base64_is_a_config_error(value: str) -> None:
    (problem,) = problems({"APPROOV_BASE64_SECRET": value})
    assert "not valid base64" in problem


@pytest.mark.parametrize(
    "spelling",
    [
        DUMMY_SECRET_B64,
        DUMMY_SECRET_B64.rstrip("="),
        base64.urlsafe_b64encode(DUMMY_SECRET).decode(),
        base64.urlsafe_b64encode(DUMMY_SECRET).decode().rstrip("="),
        f"  {DUMMY_SECRET_B64}\n",
    ],
)
def test_secret_is_accepted_in_standard_or_url_safe_base64_padded_or_not(spelling: str) -> None:
    assert Settings.from_env({"APPROOV_BASE64_SECRET": spelling}).secret == DUMMY_SECRET


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "APPROOV_TOKEN_BINDING": "maybe",
            "APPROOV_ALLOW_STATUS": "302",
            "APPROOV_LEEWAY_SECONDS": "-1",
            "APPROOV_LOGGING_ENABLED": "sometimes",
            "APPROOV_TOKEN_HEADER": "Approov Token",
        }
    )
    named = sorted(problem.split(":")[0] for problem in found)
    assert named == [
        "APPROOV_ALLOW_STATUS",
        "APPROOV_LEEWAY_SECONDS",
        "APPROOV_LOGGING_ENABLED",
        "APPROOV_TOKEN_BINDING",
        "APPROOV_TOKEN_HEADER",
    ]
    assert str(ConfigError(list(found))).startswith("configuration has 5 problems:")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("Yes", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("NO", False),
    ],
)
def test_booleans_accept_true_false_1_0_yes_no_in_any_case(text: str, value: bool) -> None:
    settings = Settings.from_env({**BASE, "APPROOV_ABORT_REQUEST_ON_INVALID_TOKEN": text})
    assert settings.abort_on_invalid_token is value


@pytest.mark.parametrize("text", ["on", "off", "2", "y", "enabled"])
def test_any_other_boolean_spelling_is_a_config_error(text: str) -> None:
    (problem,) = problems({**BASE, "APPROOV_ABORT_REQUEST_ON_INVALID_TOKEN_BINDING": text})
    assert problem.startswith("APPROOV_ABORT_REQUEST_ON_INVALID_TOKEN_BINDING:")


def test_binding_headers_are_an_ordered_comma_separated_list() -> None:
    settings = Settings.from_env(
        {**BASE, "APPROOV_TOKEN_BINDING_HEADER": "Authorization, X-Session"}
    )
    assert settings.binding_headers == ("Authorization", "X-Session")


@pytest.mark.parametrize("value", ["Authorization,authorization", "A,,B", "Bad Header"])
def test_binding_header_list_with_repeats_or_invalid_names_is_a_config_error(value: str) -> None:
    assert problems({**BASE, "APPROOV_TOKEN_BINDING_HEADER": value})


def test_token_header_cannot_also_be_a_binding_header() -> None:
    (problem,) = problems({**BASE, "APPROOV_TOKEN_BINDING_HEADER": "approov-token"})
    assert "cannot be bound to itself" in problem


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("required", BindingMode.REQUIRED),
        ("if-present", BindingMode.IF_PRESENT),
        ("OFF", BindingMode.OFF),
    ],
)
def test_the_binding_mode_is_read_whatever_its_case(text: str, mode: BindingMode) -> None:
    assert Settings.from_env({**BASE, "APPROOV_TOKEN_BINDING": text}).binding_mode is mode


@pytest.mark.parametrize(
    ("text", "ok"), [("200", True), ("204", True), ("201", False), ("401", False), ("2O4", False)]
)
def test_allow_status_is_200_or_204_only(text: str, ok: bool) -> None:
    env = {**BASE, "APPROOV_ALLOW_STATUS": text}
    if ok:
        assert Settings.from_env(env).allow_status == int(text)
    else:
        assert problems(env)


@pytest.mark.parametrize(
    ("text", "ok"),
    [("0", True), ("300", True), ("301", False), ("1.5", False), ("-1", False), ("\u0665", False)],
)
def test_leeway_is_whole_seconds_up_to_five_minutes(text: str, ok: bool) -> None:
    env = {**BASE, "APPROOV_LEEWAY_SECONDS": text}
    if ok:
        assert Settings.from_env(env).leeway_seconds == int(text)
    else:
        assert problems(env)


def test_issuer_and_audience_are_read_when_set() -> None:
    settings = Settings.from_env({**BASE, "APPROOV_ISSUER": "approov", "APPROOV_AUDIENCE": "api"})
    assert (settings.issuer, settings.audience) == ("approov", "api")


def test_secret_never_appears_in_repr_or_summary() -> None:
    settings = Settings.from_env(BASE)
    shown = repr(settings) + settings.summary()
    assert DUMMY_SECRET_B64 not in shown
    assert DUMMY_SECRET_B64.rstrip("=")[:16] not in shown
    assert repr(DUMMY_SECRET)[2:20] not in shown
    assert settings.summary().startswith("ok: keys=secret(64 bytes, sha256:")


@pytest.mark.parametrize(
    "url",
    [
        "https://keys.example/jwks.json",
        "http://127.0.0.1:8080/jwks.json",
        "http://127.5.0.1/jwks.json",
        "http://localhost/jwks.json",
        "http://[::1]:9/jwks.json",
    ],
)
def test_jwks_url_is_https_or_plain_http_to_loopback(url: str) -> None:
    assert Settings.from_env({**BASE, "APPROOV_JWKS_URL": url}).jwks_url == url


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://keys.example/jwks.json", "plain http"),
        ("http://10.0.0.5/jwks.json", "plain http"),
        ("http://127.0.0.1.example/jwks.json", "plain http"),
        ("ftp://keys.example/jwks.json", "not an https URL"),
        ("https:///jwks.json", "not an https URL"),
    ],
)
def test_jwks_url_over_plain_http_elsewhere_is_refused(url: str, says: str) -> None:
    """Anyone on the path of a plain-http fetch could inject keys."""
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, "APPROOV_JWKS_URL": url})
    assert says in str(error.value)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("off", SigningMode.OFF),
        ("IF-PRESENT", SigningMode.IF_PRESENT),
        ("required", SigningMode.REQUIRED),
    ],
)
def test_the_signing_mode_is_read_whatever_its_case(text: str, mode: SigningMode) -> None:
    assert Settings.from_env({**BASE, "APPROOV_MESSAGE_SIGNING": text}).signing_mode is mode


def test_every_message_signing_problem_is_reported_at_once() -> None:
    found = problems(
        {
            **BASE,
            "APPROOV_MESSAGE_SIGNING": "on",
            "APPROOV_SIGNATURE_MAX_AGE_SECONDS": "0",
            "APPROOV_SIGNATURE_CLOCK_SKEW_SECONDS": "301",
            "APPROOV_ABORT_REQUEST_ON_INVALID_MESSAGE_SIGNATURE": "maybe",
            "APPROOV_PUBLIC_BASE_URL": "api.example.com",
        }
    )
    assert [problem.split(":")[0] for problem in found] == [
        "APPROOV_MESSAGE_SIGNING",
        "APPROOV_SIGNATURE_MAX_AGE_SECONDS",
        "APPROOV_SIGNATURE_CLOCK_SKEW_SECONDS",
        "APPROOV_ABORT_REQUEST_ON_INVALID_MESSAGE_SIGNATURE",
        "APPROOV_PUBLIC_BASE_URL",
    ]


@pytest.mark.parametrize(
    ("text", "base_url"),
    [
        ("https://api.example.com", "https://api.example.com"),
        ("https://api.example.com/", "https://api.example.com"),
        ("http://api.example.com:8443", "http://api.example.com:8443"),
        ("HTTPS://API.example.com:443", "https://api.example.com"),
        ("http://[::1]:80/", "http://[::1]"),
        ("https://api.example.com:99999", None),
        ("https://api.example.com/v1", None),
        ("https://api.example.com?x=1", None),
        ("https://api.example.com#top", None),
        ("https://user@api.example.com", None),
        ("ftp://api.example.com", None),
        ("https://", None),
    ],
)
def test_public_base_url_is_a_scheme_and_an_authority_normalised_once(
    text: str, base_url: str | None
) -> None:
    """The URL the clients call, to rebuild a signed @target-uri from: no path to append to."""
    env = {**BASE, "APPROOV_PUBLIC_BASE_URL": text}
    if base_url is None:
        assert problems(env)
    else:
        assert Settings.from_env(env).public_base_url == base_url


def test_summary_shows_the_message_signing_settings() -> None:
    env = {
        **BASE,
        "APPROOV_MESSAGE_SIGNING": "if-present",
        "APPROOV_PUBLIC_BASE_URL": "https://a.io",
    }
    summary = Settings.from_env(env).summary()
    assert (
        "signing=if-present (max age 60s, skew 0s, url https://a.io, account key none)" in summary
    )


@pytest.mark.parametrize(
    ("url", "printed"),
    [
        ("https://keys.example/jwks.json", "https://keys.example/jwks.json"),
        ("https://u:p@keys.example/j?api_key=k&flag", "https://***@keys.example/j?api_key=***&***"),
        ("https://keys.example/j?a=1&&b=#tok", "https://keys.example/j?a=***&&b=***#***"),
        ("http://u%40x:p@127.0.0.1:9/j", "http://***@127.0.0.1:9/j"),
    ],
)
def test_a_url_is_printed_without_its_userinfo_query_values_or_fragment(
    url: str, printed: str
) -> None:
    assert redacted_url(url) == printed


def test_a_refused_jwks_url_is_named_without_its_secrets() -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, "APPROOV_JWKS_URL": "http://u:pw@keys.example/j?key=k3y"})
    assert "'http://***@keys.example/j?key=***' is plain http" in str(error.value)
    assert "k3y" not in str(error.value)
    assert "pw" not in str(error.value)


def test_the_summary_names_a_jwks_url_without_its_secrets() -> None:
    url = "https://u:pw@keys.example/jwks?api_key=k3y"
    summary = Settings.from_env({**BASE, "APPROOV_JWKS_URL": url}).summary()
    assert "jwks-url(https://***@keys.example/jwks?api_key=***," in summary
    assert "k3y" not in summary
    assert "pw@" not in summary


@pytest.mark.parametrize(
    ("store", "summary"),
    [
        (None, "replay_store=none (single-use routes deny)"),
        ("memory", "replay_store=memory (this process only: each worker and replica accepts"),
        ("redis://:s3cret@valkey:6379/0", "replay_store=redis://***@valkey:6379/0 (timeout 50ms)"),
        ("unix:///run/redis.sock", "replay_store=unix:///run/redis.sock (timeout 50ms)"),
    ],
)
def test_the_summary_says_plainly_where_single_use_signatures_are_remembered(
    store: str | None, summary: str
) -> None:
    env = {**BASE, **({"APPROOV_REPLAY_STORE": store} if store else {})}
    assert summary in Settings.from_env(env).summary()


@pytest.mark.parametrize("store", ["valkey:6379", "http://valkey:6379", "memcached://x"])
def test_a_replay_store_that_is_not_a_redis_url_nor_memory_is_refused(store: str) -> None:
    with pytest.raises(ConfigError) as error:
        Settings.from_env({**BASE, "APPROOV_REPLAY_STORE": store})
    assert "is not a redis://, rediss:// or unix:// URL, nor `memory`" in str(error.value)
