"""The command line: check-config, explain, token, .env loading, usage errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import time
from pathlib import Path
from typing import Any

import pytest

from authsvc.check.credentials import Credentials
from authsvc.check.message import ClientRequest
from authsvc.cli import main
from authsvc.config import Settings
from authsvc.environment import load_environment
from authsvc.http.server import default_workers
from authsvc.policy import BindingMode, Reason, SigningMode
from authsvc.runtime import Runtime
from authsvc.tools.devtoken import parse_duration
from tests.support.signatures import (
    APPROOV_TEST_IPK,
    TEST_ACCOUNT_KEY_B64URL,
    TEST_MSKID,
    ipk_token,
    mskid_token,
)
from tests.support.tokens import (
    DUMMY_SECRET,
    DUMMY_SECRET_B64,
    OTHER_SECRET,
    b64url,
    bound_token,
    secret_verifier,
    token,
)


def test_check_config_prints_a_one_line_summary_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"], env={"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("ok: keys=secret(64 bytes, sha256:")
    assert out.rstrip().endswith("loaded=secret")
    assert DUMMY_SECRET_B64[:10] not in out


def test_check_config_says_envoy_checks_are_allowed_with_200(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"], env={"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}) == 0
    assert " allow_status=204(envoy:200) " in capsys.readouterr().out


def test_check_config_lists_every_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"APPROOV_TOKEN_BINDING": "x", "APPROOV_LOGGING_ENABLED": "x"}
    assert main(["check-config"], env=env) == 1
    err = capsys.readouterr().err
    assert err.startswith("authsvc: configuration has 2 problems:")
    assert "APPROOV_TOKEN_BINDING" in err
    assert "APPROOV_LOGGING_ENABLED" in err


def test_check_config_without_a_key_says_which_settings_name_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"], env={}) == 1
    assert "no verification key: set APPROOV_BASE64_SECRET" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["check-nginx", "-"], ["sign", "https://a.example/"]])
def test_the_commands_that_need_no_key_refuse_settings_that_are_wrong(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(command, env={"APPROOV_TOKEN_HEADER": "Approov Token"}) == 1
    assert "APPROOV_TOKEN_HEADER: 'Approov Token' is not a valid HTTP header name" in (
        capsys.readouterr().err
    )


def test_dot_env_in_the_working_directory_is_read_and_the_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        f"APPROOV_BASE64_SECRET={DUMMY_SECRET_B64}\nAPPROOV_ALLOW_STATUS=200\nAPPROOV_EMPTY\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPROOV_ALLOW_STATUS", "204")
    env = load_environment()
    assert env["APPROOV_BASE64_SECRET"] == DUMMY_SECRET_B64
    assert env["APPROOV_ALLOW_STATUS"] == "204"
    assert "APPROOV_EMPTY" not in env


def test_missing_dot_env_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APPROOV_TOKEN_HEADER", "X-T")
    assert load_environment()["APPROOV_TOKEN_HEADER"] == "X-T"


@pytest.mark.parametrize(
    "argv", [[], ["serve", "--workers", "0"], ["serve", "--workers", "x"], ["nonsense"]]
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv, env={})
    assert raised.value.code == 2


@pytest.mark.parametrize("argv", [["--help"], ["serve", "--help"], ["check-config", "--help"]])
def test_help_is_available_everywhere(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv, env={})
    assert raised.value.code == 0
    assert "usage: authsvc" in capsys.readouterr().out


# --- explain -----------------------------------------------------------------------------------


def explain_output(
    capsys: pytest.CaptureFixture[str], *argv: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, str]]:
    code = main(["explain", *argv], env=env or {"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64})
    lines = capsys.readouterr().out.splitlines()
    return code, {line.split()[0]: line.split(None, 1)[1] for line in lines}


def test_explain_walks_through_a_valid_token_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = explain_output(
        capsys, bound_token(b"Bearer x", did="d1"), "--binding", "Bearer x"
    )
    assert code == 0
    assert lines["signature"] == "ok, verified with key 'secret'"
    assert lines["binding"].startswith("ok: pay")
    assert re.fullmatch(r"\d+ = .* \(in 4min 5\ds\)", lines["exp"])
    assert lines["result"] == "ok: allowed (2xx)"


@pytest.mark.parametrize(
    ("tok", "argv", "line", "expected"),
    [
        (lambda: token(ttl=-7200), ["--policy", "off"], "exp", r".*\(2h 0min ago\)"),
        (
            lambda: token(secret=OTHER_SECRET),
            [],
            "signature",
            r"not verified \(signature_invalid\)",
        ),
        (lambda: "Bearer abc.def.ghi", [], "structure", r"REJECTED: not three .*"),
        (lambda: bound_token(b"Bearer x"), ["--binding", "Bearer y"], "binding", r"MISMATCH: .*"),
        (lambda: bound_token(b"Bearer x"), [], "binding", r"pay .*; pass --binding .*"),
        (token, [], "binding", r"MISSING: the token has no pay claim"),
    ],
)
def test_explain_says_which_check_failed_and_exits_3(
    capsys: pytest.CaptureFixture[str],
    tok: Any,
    argv: list[str],
    line: str,
    expected: str,
) -> None:
    code, lines = explain_output(capsys, tok(), *argv)
    assert code == 3
    assert re.fullmatch(expected, lines[line]), lines[line]
    assert "denied (401)" in lines["result"]


def test_explain_never_prints_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    main(["explain", token()], env={"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64})
    assert DUMMY_SECRET_B64[:12] not in capsys.readouterr().out


# --- token -------------------------------------------------------------------------------------


def test_token_mints_with_the_public_dummy_secret_a_token_authsvc_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}
    assert main(["token", "--expires", "2m", "--binding", "Bearer x", "--did", "d9"], env=env) == 0
    minted = capsys.readouterr().out.strip()
    verdict = secret_verifier(DUMMY_SECRET).check(
        Credentials((minted.encode(),), b"Bearer x"), BindingMode.REQUIRED
    )
    assert verdict.reason is Reason.OK
    assert verdict.claims is not None
    assert verdict.claims["did"] == "d9"
    assert 110 <= verdict.claims["exp"] - time.time() <= 120


def test_token_refuses_a_real_secret_without_dev(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"APPROOV_BASE64_SECRET": base64.b64encode(OTHER_SECRET).decode()}
    assert main(["token"], env=env) == 1
    assert "refusing to mint with a real secret" in capsys.readouterr().err
    assert main(["token", "--dev"], env=env) == 0


def test_token_needs_an_hs256_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "oct", "k": b64url(DUMMY_SECRET).decode()}]}))
    assert main(["token"], env={"APPROOV_JWKS_FILE": str(jwks)}) == 1
    assert "needs an HS256 secret" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["0", "8d", "5 minutes", "-1m", "1.5h"])
def test_token_lifetime_outside_1s_to_7d_or_unparsable_is_a_usage_error(text: str) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["token", "--expires", text], env={"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64})
    assert raised.value.code == 2


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("2h", 7200), ("7d", 604800)]
)
def test_a_token_lifetime_is_a_number_with_an_optional_unit(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000", None),
        ("200000 100000", 2),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("6400000 100000", None),
        ("garbage", None),
    ],
)
def test_default_workers_follow_the_cpus_capped_by_a_container_quota(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    cpus = len(os.sched_getaffinity(0))
    assert default_workers(path) == min(expected or cpus, cpus)


def test_default_workers_without_a_cgroup_file_are_the_cpus(tmp_path: Path) -> None:
    assert default_workers(tmp_path / "missing") == len(os.sched_getaffinity(0))


# --- message signing: token --ipk, sign, explain --signing --------------------------------------

DUMMY_ENV = {"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}
SIGNED_URL = "https://api.example.com/v1/orders?id=7"


def signed_curl(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[str, dict[str, str]]:
    """`authsvc token --ipk`, then `authsvc sign` for a POST with it: the token and the headers
    of the printed curl command."""
    assert main(["token", "--ipk", "--binding", "Bearer x"], env=DUMMY_ENV) == 0
    minted = capsys.readouterr().out.strip()
    argv = ["sign", "-X", "POST", SIGNED_URL, "-H", f"Approov-Token: {minted}"]
    assert main([*argv, "-H", "Authorization: Bearer x", *extra], env={}) == 0
    words = shlex.split(capsys.readouterr().out)
    assert (words[:5], words[-1]) == (["curl", "-sS", "-i", "-X", "POST"], SIGNED_URL)
    headers = dict(words[i + 1].split(": ", 1) for i, word in enumerate(words) if word == "-H")
    return minted, headers


def test_token_ipk_carries_the_test_installation_key(capsys: pytest.CaptureFixture[str]) -> None:
    minted, _ = signed_curl(capsys)
    claims = json.loads(base64.urlsafe_b64decode(minted.split(".")[1] + "=="))
    assert claims["ipk"] == APPROOV_TEST_IPK


def test_sign_prints_a_curl_command_whose_signature_authsvc_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Covered as the SDKs cover: method, URL, token, Authorization and the body's digest."""
    minted, headers = signed_curl(capsys, "--data", '{"n": 1}')
    assert headers["Content-Digest"] == (
        "sha-256=:" + base64.b64encode(hashlib.sha256(b'{"n": 1}').digest()).decode() + ":"
    )
    assert headers["Signature-Input"].startswith(
        'install=("@method" "@target-uri" "approov-token" "authorization" "content-digest")'
    )
    fields = {name.lower(): (value.encode(),) for name, value in headers.items()}
    request = ClientRequest("POST", SIGNED_URL, fields, b'{"n": 1}')
    verdict = Runtime.from_settings(Settings(secret=DUMMY_SECRET)).signatures.check(
        secret_verifier().check(Credentials((minted.encode(),), b"Bearer x"), BindingMode.REQUIRED),
        request,
        SigningMode.REQUIRED,
    )
    assert verdict.reason is Reason.OK


def test_sign_needs_the_token_header(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", SIGNED_URL, "-H", "Authorization: Bearer x"], env={}) == 1
    assert "authsvc token --ipk" in capsys.readouterr().err


def explain_signed(
    capsys: pytest.CaptureFixture[str], *sign_args: str
) -> tuple[int, dict[str, str]]:
    """`authsvc explain` of a POST signed by `authsvc sign`, given only its signature headers."""
    minted, headers = signed_curl(capsys, *sign_args)
    argv = [minted, "--binding", "Bearer x", "--signing", "required", "--method", "POST"]
    argv += ["--url", SIGNED_URL]
    for name in ("Signature-Input", "Signature"):
        argv += ["--header", f"{name}: {headers[name]}"]
    return explain_output(capsys, *argv)


def test_explain_names_the_covered_headers_it_was_not_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = explain_signed(capsys, "--data", "{}")
    assert code == 3
    assert lines["base"] == (
        "NOT REBUILT: message_component_missing; pass --header for content-digest"
    )


def test_explain_walks_through_a_message_signature(capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = explain_signed(capsys)
    assert code == 0
    assert lines["ipk"] == "ok: an EC P-256 public key"
    assert lines["base"] == '"@method": POST'
    assert re.fullmatch(r"\d+ = .* \(in 1\ds\)", lines["expires"])
    assert lines["result"] == "ok: allowed (2xx)"


@pytest.mark.parametrize(
    ("argv", "line", "expected"),
    [
        (["--url", SIGNED_URL], "signature-input", "MISSING: pass --header .*"),
        (
            [
                "--url",
                SIGNED_URL,
                "--header",
                'Signature-Input: install=("@method");alg="ecdsa-p256-sha256";created={now}',
                "--header",
                f"Signature: install=:{base64.b64encode(bytes(64)).decode()}:",
            ],
            "result",
            "message_coverage_insufficient: denied .*",
        ),
        (
            [
                "--header",
                'Signature-Input: install=("@method" "@target-uri" "approov-token")'
                ';alg="ecdsa-p256-sha256";created={now}',
                "--header",
                f"Signature: install=:{base64.b64encode(bytes(64)).decode()}:",
            ],
            "base",
            "NOT REBUILT: message_target_unknown",
        ),
    ],
    ids=["unsigned", "too-little-covered", "no-url"],
)
def test_explain_says_which_signature_check_failed(
    capsys: pytest.CaptureFixture[str], argv: list[str], line: str, expected: str
) -> None:
    now = str(int(time.time()))  # `created` when the test runs, not when it was collected
    argv = [word.replace("{now}", now) for word in argv]
    code, lines = explain_output(
        capsys, ipk_token(), "--policy", "off", "--signing", "required", *argv
    )
    assert code == 3
    assert re.fullmatch(expected, lines[line]), "\n".join(f"{k}: {v}" for k, v in lines.items())


def test_check_config_never_prints_a_jwks_urls_userinfo_or_query_values(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "http://jwks-user:s3cret-pass@127.0.0.1:9/jwks.json?api_key=s3cret-key&v=2"
    env = {"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64, "APPROOV_JWKS_URL": url}
    assert main(["check-config"], env=env) == 1
    printed = "".join(capsys.readouterr())
    assert "APPROOV_JWKS_URL: http://***@127.0.0.1:9/jwks.json?api_key=***&v=***" in printed
    assert "s3cret" not in printed


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


# --- account signatures: token --mskid, sign --account-secret, explain ------------------------

ACCOUNT_ENV = {
    **DUMMY_ENV,
    "APPROOV_ACCOUNT_MESSAGE_SIGNING_SECRET": TEST_ACCOUNT_KEY_B64URL,
    "APPROOV_ACCOUNT_MESSAGE_SIGNING_KEY_ID": TEST_MSKID,
}


def account_signed_curl(capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, str]]:
    """`authsvc token --mskid`, then `authsvc sign --account-secret` for a GET with it."""
    assert main(["token", "--mskid", TEST_MSKID], env=DUMMY_ENV) == 0
    minted = capsys.readouterr().out.strip()
    argv = ["sign", SIGNED_URL, "-H", f"Approov-Token: {minted}", "-H", "Approov-TraceID: dHJh"]
    assert main([*argv, "--account-secret", TEST_ACCOUNT_KEY_B64URL], env={}) == 0
    words = shlex.split(capsys.readouterr().out)
    return minted, dict(words[i + 1].split(": ", 1) for i, w in enumerate(words) if w == "-H")


def test_sign_as_account_signs_what_the_account_check_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    minted, headers = account_signed_curl(capsys)
    claims = json.loads(base64.urlsafe_b64decode(minted.split(".")[1] + "=="))
    assert claims["mskid"] == TEST_MSKID
    assert headers["Signature-Input"].startswith(
        'account=("@method" "@target-uri" "approov-token" "approov-traceid");alg="hmac-sha256"'
    )
    fields = {name.lower(): (value.encode(),) for name, value in headers.items()}
    runtime = Runtime.from_settings(Settings.from_env(ACCOUNT_ENV))
    token_verdict = secret_verifier().check(Credentials((minted.encode(),), None), BindingMode.OFF)
    verdict = runtime.signatures.check(
        token_verdict, ClientRequest("GET", SIGNED_URL, fields), SigningMode.REQUIRED
    )
    assert (verdict.reason, verdict.signed_by) == (Reason.OK, "account")


def test_sign_refuses_an_account_key_that_is_not_base64url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_code:
        main(["sign", SIGNED_URL, "--account-secret", "not a key!"], env={})
    assert exit_code.value.code == 2
    assert "account key is not base64url" in capsys.readouterr().err


def test_explain_walks_through_an_account_signature_and_the_ids_it_would_log(
    capsys: pytest.CaptureFixture[str],
) -> None:
    minted, headers = account_signed_curl(capsys)
    argv = [minted, "--policy", "off", "--signing", "required", "--url", SIGNED_URL]
    for name in ("Signature-Input", "Signature", "Approov-TraceID"):
        argv += ["--header", f"{name}: {headers[name]}"]
    argv += ["--header", "Approov-Status: success", "--header", f"traceparent: {TRACEPARENT}"]
    code, lines = explain_output(capsys, *argv, env=ACCOUNT_ENV)
    assert code == 0
    assert (
        lines["mskid"]
        == f"{TEST_MSKID!r}: names the configured account key; the account signature is checked"
    )
    assert lines["label"] == "account: the signature checked"
    assert lines["base"] == '"@method": GET'
    assert lines["approov-traceid"] == "logged as approov_trace_id 'dHJh'"
    assert lines["traceparent"] == "logged as trace_id '4bf92f3577b34da6a3ce929d0e0e4736'"
    assert lines["approov-status"].startswith("'success': approov_status 'success'")
    assert lines["signed-by"] == "account (logged as signed_by)"


def test_explain_says_when_the_mskid_is_not_the_configured_key_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**ACCOUNT_ENV, "APPROOV_ACCOUNT_MESSAGE_SIGNING_KEY_ID": "another-key"}
    code, lines = explain_output(
        capsys, mskid_token(), "--policy", "off", "--signing", "required", env=env
    )
    assert code == 3
    assert lines["mskid"] == f"MISMATCH: {TEST_MSKID!r}, the configured key id is 'another-key'"
    assert lines["result"].startswith("mskid_mismatch: denied")


def test_check_config_refuses_a_token_prefix_on_a_binding_header(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {**DUMMY_ENV, "APPROOV_TOKEN_HEADER": "Authorization", "APPROOV_TOKEN_PREFIX": "Bearer "}
    assert main(["check-config"], env=env) == 1
    assert "APPROOV_TOKEN_PREFIX: the token header 'Authorization' is also a binding header" in (
        capsys.readouterr().err
    )
