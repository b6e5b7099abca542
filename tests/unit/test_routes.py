"""The route grammar written (route_name) is the grammar read (parse_route)."""

from __future__ import annotations

import itertools

import pytest

from authsvc.policy import BindingMode, SigningMode
from authsvc.routes import RoutePolicy, parse_route, route_name


@pytest.mark.parametrize(
    ("binding", "signing", "monitored"),
    list(itertools.product([None, *BindingMode], [None, *SigningMode], [False, True])),
)
def test_a_named_route_is_read_back_as_the_policy_it_names(
    binding: BindingMode | None, signing: SigningMode | None, monitored: bool
) -> None:
    defaults = (BindingMode.IF_PRESENT, SigningMode.REQUIRED)
    path = "/" + route_name(binding, signing, monitored)
    assert parse_route(path, *defaults) == RoutePolicy(
        binding or defaults[0], signing or defaults[1], monitored, appended=False
    )


def test_a_part_left_to_the_default_is_not_named() -> None:
    assert route_name(None, None, False) == "auth"
    assert route_name("off", None, True) == "auth-binding-off-monitor"
    assert route_name(None, "required", False) == "auth-signing-required"
