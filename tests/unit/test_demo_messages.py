"""What `make demo` says on a machine without nginx (runs everywhere: it needs no nginx)."""

from __future__ import annotations

import pytest

from demo import nginx
from demo.__main__ import main as demo_main
from demo.processes import free_port


def test_demo_says_how_to_install_nginx_when_it_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(nginx, "NGINX_CANDIDATES", ())
    assert demo_main(["--port", str(free_port())]) == 1
    assert "apt-get install nginx-light" in capsys.readouterr().err
