"""Which headers say what the client asked for (authsvc.check.origin): the method and URL a message
signature is checked against are believed only when every source the check carries agrees, so a
client's copy of another proxy's header can only refuse the client's own request."""

from __future__ import annotations

import pytest

from authsvc.check.origin import ClientRequestReader

NGINX = [
    (b"host", b"authsvc"),
    (b"x-original-method", b"POST"),
    (b"x-original-uri", b"/api/v1/items%2F7?colour=red"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"api.example.com"),
    (b"x-approov-routed-host", b"api.example.com"),
    (b"x-original-content-length", b"18"),
]
CADDY = [
    (b"host", b"127.0.0.1:8002"),
    (b"x-forwarded-method", b"POST"),
    (b"x-forwarded-uri", b"/api/v1/items%2F7?colour=red"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-host", b"api.example.com"),
]
ENVOY = [(b"host", b"api.example.com"), (b"x-forwarded-proto", b"https")]
EXPECTED_URL = "https://api.example.com/api/v1/items%2F7?colour=red"


def read(
    headers: list[tuple[bytes, bytes]],
    *,
    base_url: str | None = None,
    method: str = "GET",
    client_target: bytes | None = None,
    body: bytes | None = None,
) -> tuple[str | None, str | None, dict[str, tuple[bytes, ...]]]:
    request = ClientRequestReader(base_url).read(
        headers, method=method, client_target=client_target, body=body
    )
    return request.method, request.target_uri, dict(request.fields)


@pytest.mark.parametrize(
    ("headers", "method", "client_target"),
    [
        (NGINX, "GET", None),
        (CADDY, "GET", None),  # forward_auth's check is always a GET
        (ENVOY, "POST", b"/api/v1/items%2F7?colour=red"),  # Envoy keeps method and raw path
    ],
    ids=["nginx", "caddy", "envoy"],
)
def test_each_proxys_headers_give_the_clients_method_and_raw_url(
    headers: list[tuple[bytes, bytes]], method: str, client_target: bytes | None
) -> None:
    assert read(headers, method=method, client_target=client_target)[:2] == (
        "POST",
        EXPECTED_URL,
    )


# Traefik's forwardAuth sends the same X-Forwarded-* as Caddy's forward_auth.
TRAEFIK = [(b"host", b"authsvc:8002"), *CADDY[1:]]


def through(
    proxy: list[tuple[bytes, bytes]], *added: tuple[bytes, bytes]
) -> tuple[str | None, str | None, dict[str, tuple[bytes, ...]]]:
    """What `proxy` tells authsvc of the client's POST, with headers the client `added`: Envoy
    makes the check with the client's method and path, the others say them in headers."""
    if proxy is ENVOY:
        return read([*proxy, *added], method="POST", client_target=b"/api/v1/items%2F7?colour=red")
    return read([*proxy, *added])


@pytest.mark.parametrize(
    ("proxy", "forged"),
    [
        (CADDY, (b"x-original-uri", b"/other")),
        (CADDY, (b"x-original-url", b"http://evil/other")),
        (TRAEFIK, (b"x-original-uri", b"/other")),
        (TRAEFIK, (b"x-original-url", b"https://api.example.com/other")),
        (NGINX, (b"x-forwarded-uri", b"/other")),
        (NGINX, (b"x-original-url", b"https://api.example.com/other")),
        (ENVOY, (b"x-forwarded-uri", b"/other")),
        (ENVOY, (b"x-original-uri", b"/other")),
    ],
    ids=[
        "caddy-original-uri",
        "caddy-original-url",
        "traefik-original-uri",
        "traefik-original-url",
        "nginx-forwarded-uri",
        "nginx-original-url",
        "envoy-forwarded-uri",
        "envoy-original-uri",
    ],
)
def test_a_client_sent_url_header_that_disagrees_with_the_proxys_leaves_the_url_unknown(
    proxy: list[tuple[bytes, bytes]], forged: tuple[bytes, bytes]
) -> None:
    """Whichever header a proxy sets, a client's copy of another proxy's passes through it:
    the two disagree, so neither is believed (and the forger's own request is refused)."""
    assert through(proxy, forged)[1] is None


@pytest.mark.parametrize(
    ("proxy", "forged"),
    [
        (CADDY, (b"x-original-method", b"GET")),
        (TRAEFIK, (b"x-original-method", b"GET")),
        (NGINX, (b"x-forwarded-method", b"GET")),
        (ENVOY, (b"x-original-method", b"GET")),
    ],
    ids=["caddy", "traefik", "nginx", "envoy"],
)
def test_a_client_sent_method_that_disagrees_with_the_proxys_leaves_the_method_unknown(
    proxy: list[tuple[bytes, bytes]], forged: tuple[bytes, bytes]
) -> None:
    """A DELETE signed as a GET: the proxy says POST, the client's header GET."""
    assert through(proxy, forged)[0] is None


def test_sources_that_agree_give_the_url_whichever_proxy_set_them() -> None:
    """A client (or a second proxy) repeating the same values changes nothing."""
    agreeing = [
        (b"x-original-uri", b"/api/v1/items%2F7?colour=red"),
        (b"x-original-method", b"POST"),
    ]
    assert read([*CADDY, *agreeing])[:2] == ("POST", EXPECTED_URL)


@pytest.mark.parametrize(
    ("name", "value"),
    [(b"x-forwarded-host", b"evil.example"), (b"x-forwarded-proto", b"http")],
)
def test_a_forwarded_host_or_scheme_that_disagrees_with_the_whole_url_leaves_it_unknown(
    name: bytes, value: bytes
) -> None:
    assert read([*INGRESS, (name, value)])[1] is None


def test_behind_envoy_a_forwarded_host_must_agree_with_the_clients_authority() -> None:
    """Envoy's check keeps the client's Host; a client's X-Forwarded-Host cannot replace it."""
    assert through(ENVOY, (b"x-forwarded-host", b"evil.example"))[1] is None


@pytest.mark.parametrize(
    ("scheme", "authority", "origin"),
    [
        (b"https", b"api.example.com:443", "https://api.example.com"),
        (b"http", b"api.example.com:80", "http://api.example.com"),
        (b"https", b"api.example.com:", "https://api.example.com"),
        (b"HTTPS", b"API.Example.COM", "https://api.example.com"),
        (b"https", b"api.example.com:8443", "https://api.example.com:8443"),
        (b"https", b"api.example.com:80", "https://api.example.com:80"),
        (b"http", b"[::1]:80", "http://[::1]"),
        (b"http", b"[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_the_url_is_normalised_lower_case_scheme_and_host_no_default_port(
    scheme: bytes, authority: bytes, origin: str
) -> None:
    """RFC 3986 6.2.3, the form the SDKs sign: `:authority api.example.com:443` is the same URL
    as `https://api.example.com`; another port is kept."""
    headers = [
        (n, scheme if n == b"x-forwarded-proto" else authority if n == b"x-forwarded-host" else v)
        for n, v in NGINX
        if n != b"x-approov-routed-host"
    ]
    assert read(headers)[1] == origin + "/api/v1/items%2F7?colour=red"


def test_sources_that_differ_only_by_a_default_port_or_case_agree() -> None:
    headers = [
        (b"x-original-url", b"https://API.example.com:443/api/v1/items%2F7?colour=red"),
        (b"x-forwarded-host", b"api.example.com"),
        (b"x-forwarded-proto", b"HTTPS"),
        (b"x-original-method", b"POST"),
    ]
    assert read(headers)[:2] == ("POST", EXPECTED_URL)


def test_with_a_public_base_url_no_header_chooses_scheme_or_host() -> None:
    """TLS ended in front of the proxy: X-Forwarded-Host and -Proto are not read at all."""
    headers = [
        *[(n, v) for n, v in NGINX if n != b"x-forwarded-host"],
        (b"x-forwarded-host", b"evil"),
    ]
    assert read(headers, base_url="https://api.example.com")[1] == EXPECTED_URL


@pytest.mark.parametrize(
    "duplicated", [b"x-original-uri", b"x-forwarded-proto", b"x-forwarded-host"]
)
def test_a_url_part_sent_twice_leaves_the_url_unknown(duplicated: bytes) -> None:
    """Two copies mean a proxy passed the client's own along with its: believe neither."""
    headers = [*NGINX, (duplicated, dict(NGINX)[duplicated])]
    assert read(headers)[1] is None


@pytest.mark.parametrize(
    "missing", [b"x-original-uri", b"x-forwarded-proto"], ids=["no-uri", "no-scheme"]
)
def test_a_missing_url_part_leaves_the_url_unknown(missing: bytes) -> None:
    headers = [(name, value) for name, value in NGINX if name != missing]
    assert read(headers)[1] is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        (b"x-forwarded-proto", b"https, http"),
        (b"x-forwarded-proto", b"1https"),
        (b"x-forwarded-host", b"api.example.com/evil"),
        (b"x-forwarded-host", b"user@api.example.com"),
        (b"x-original-uri", b"api/v1"),
        (b"x-original-uri", b"/api v1"),
        (b"x-original-uri", "/caf\u00e9".encode()),
    ],
)
def test_a_value_that_is_not_its_url_part_leaves_the_url_unknown(name: bytes, value: bytes) -> None:
    headers = [(n, value if n == name else v) for n, v in NGINX]
    assert read(headers)[1] is None


def test_the_public_base_url_replaces_scheme_and_host_from_headers() -> None:
    """TLS ended in front of the proxy: the proxy's own scheme would be http."""
    headers = [(n, b"http" if n == b"x-forwarded-proto" else v) for n, v in NGINX]
    url = read(headers, base_url="https://api.example.com")[1]
    assert url == EXPECTED_URL


def test_the_checks_own_content_length_is_never_the_clients() -> None:
    headers = [(b"content-length", b"0"), *ENVOY]
    assert "content-length" not in read(headers, client_target=b"/x")[2]


def test_the_clients_content_length_comes_from_the_proxy_or_the_forwarded_body() -> None:
    assert read(NGINX)[2]["content-length"] == (b"18",)
    with_body = read([(b"content-length", b"5"), *ENVOY], client_target=b"/x", body=b"hello")
    assert with_body[2]["content-length"] == (b"5",)


def test_an_empty_original_content_length_is_no_content_length() -> None:
    """Caddy sends the header empty when the client sent no Content-Length."""
    headers = [(n, b"" if n == b"x-original-content-length" else v) for n, v in NGINX]
    assert "content-length" not in read(headers)[2]


def test_fields_keep_every_line_trimmed_and_in_order() -> None:
    headers = [*NGINX, (b"signature", b" a=:AA==: "), (b"signature", b"b=:AA==:\t")]
    assert read(headers)[2]["signature"] == (b"a=:AA==:", b"b=:AA==:")


INGRESS = [
    (b"host", b"authsvc.approov.svc"),
    (b"x-original-url", b"https://api.example.com/api/v1/items%2F7?colour=red"),
    (b"x-original-method", b"POST"),
]


def test_ingress_nginxs_whole_url_alone_gives_method_and_url() -> None:
    assert read(INGRESS)[:2] == ("POST", EXPECTED_URL)


@pytest.mark.parametrize(
    "url",
    [b"api.example.com/x", b"https://api.example.com", b"https://a b/x", b"https:///x"],
)
def test_an_original_url_that_is_not_a_url_leaves_it_unknown(url: bytes) -> None:
    headers = [(n, url if n == b"x-original-url" else v) for n, v in INGRESS]
    assert read(headers)[1] is None


def test_the_public_base_url_also_replaces_ingress_nginxs_scheme_and_host() -> None:
    headers = [(n, v.replace(b"https:", b"http:")) for n, v in INGRESS]
    assert read(headers, base_url="https://api.example.com")[1] == EXPECTED_URL


def test_with_no_source_of_the_method_the_checks_own_is_the_clients() -> None:
    """A check sent straight to authsvc (no proxy headers): its own method is the client's."""
    assert read([(b"host", b"api.example.com")], method="PATCH")[0] == "PATCH"


def test_only_spaces_and_tabs_around_a_field_value_are_trimmed() -> None:
    """RFC 9110 5.5: OWS is SP and HTAB; other control bytes are part of the value."""
    fields = read([(b"x-field", b" \tv\x0c\t ")])[2]
    assert fields["x-field"] == (b"v\x0c",)


@pytest.mark.parametrize(
    ("forwarded_host", "routed_host", "url"),
    [
        (b"api.example.com", b"api.example.com", EXPECTED_URL),
        (b"API.Example.com:443", b"api.example.com", EXPECTED_URL),
        (b"[::1]:8443", b"[::1]", "https://[::1]:8443/api/v1/items%2F7?colour=red"),
        # nginx routed `GET https://a.example/...` by its request line; the Host said otherwise
        (b"api.example.com", b"a.example", None),
        (b"api.example.com", b"api.example.com.", None),
        (b"api.example.com", b"not a host", None),
    ],
)
def test_the_urls_host_must_be_the_host_the_proxy_routed_by(
    forwarded_host: bytes, routed_host: bytes, url: str | None
) -> None:
    headers = [
        (name, routed_host if name == b"x-approov-routed-host" else value)
        for name, value in NGINX
        if name != b"x-forwarded-host"
    ]
    _, target_uri, _ = read([*headers, (b"x-forwarded-host", forwarded_host)])
    assert target_uri == url


def test_a_routed_host_sent_twice_leaves_the_url_unknown() -> None:
    _, target_uri, _ = read([*NGINX, (b"x-approov-routed-host", b"api.example.com")])
    assert target_uri is None


def test_with_a_public_base_url_the_routed_host_is_not_read() -> None:
    headers = [*(pair for pair in NGINX if pair[0] != b"x-approov-routed-host")]
    headers.append((b"x-approov-routed-host", b"elsewhere.example"))
    _, target_uri, _ = read(headers, base_url="https://api.example.com")
    assert target_uri == EXPECTED_URL
