"""The command line: check-config, .env loading, usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from authsvc.cli import main
from authsvc.environment import load_environment
from tests.tokens import DUMMY_SECRET_B64


def test_check_config_prints_a_one_line_summary_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check-config"], env={"APPROOV_BASE64_SECRET": DUMMY_SECRET_B64}) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("ok: keys=secret(64 bytes, sha256:")
    assert out.rstrip().endswith("loaded=secret")
    assert DUMMY_SECRET_B64[:10] not in out


def test_check_config_lists_every_problem_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"APPROOV_TOKEN_BINDING": "x", "APPROOV_LOGGING_ENABLED": "x"}
    assert main(["check-config"], env=env) == 1
    err = capsys.readouterr().err
    assert err.startswith("authsvc: configuration has 3 problems:")
    assert "APPROOV_BASE64_SECRET" in err
    assert "APPROOV_TOKEN_BINDING" in err
    assert "APPROOV_LOGGING_ENABLED" in err


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
