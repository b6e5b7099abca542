"""Writes tests/corpus/cases.json: hostile requests and the outcome each must get.

Run `python -m tests.corpus.generate` after changing a case. Tokens are signed with Approov's
public dummy secret and, when valid, expire in 2100, so the committed data stays valid.
Header values are latin-1 strings, i.e. any bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

from tests.tokens import DUMMY_SECRET, HS256_HEADER, OTHER_SECRET, b64url, json_bytes, pay_for

CASES_FILE = Path(__file__).with_name("cases.json")
BINDING = "Bearer corpus-user"
FUTURE = 4_102_444_800  # 2100-01-01
PAST = 1_600_000_000
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def signed(header: Any, payload: Any, secret: bytes = DUMMY_SECRET, digest: str = "sha256") -> str:
    header_bytes = header if isinstance(header, bytes) else json_bytes(header)
    payload_bytes = payload if isinstance(payload, bytes) else json_bytes(payload)
    signing_input = b64url(header_bytes) + b"." + b64url(payload_bytes)
    signature = hmac.new(secret, signing_input, digest).digest()
    return (signing_input + b"." + b64url(signature)).decode()


def claims(**extra: Any) -> dict[str, Any]:
    return {"exp": FUTURE, "did": "corpus", "pay": pay_for(BINDING.encode()), **extra}


VALID = signed(HS256_HEADER, claims())


def case(name: str, expect: str, token: str | None = VALID, **options: Any) -> dict[str, Any]:
    headers: list[list[str]] = []
    if token is not None:
        headers.append(["Approov-Token", token])
    if options.pop("authorization", True):
        headers.append(["Authorization", BINDING])
    headers += options.pop("extra_headers", [])
    return {
        "name": name,
        "expect": expect,
        "method": options.pop("method", "GET"),
        "headers": headers,
        "body": options.pop("body", None),
        "content_length_without_body": options.pop("content_length_without_body", 0),
        **options,
    }


def raw_payload(exp_json: str) -> bytes:
    return b'{"exp":' + exp_json.encode() + b',"pay":"' + pay_for(BINDING.encode()).encode() + b'"}'


def cases() -> list[dict[str, Any]]:
    out = [case("valid token and binding", "allow")]
    # alg none and case variants, algorithms a secret must not enable
    for alg in ["none", "None", "NONE", "nOnE"]:
        unsigned = (
            b64url(json_bytes({"alg": alg})).decode() + "." + b64url(json_bytes(claims())).decode()
        )
        out.append(case(f"alg {alg}, empty signature", "deny", unsigned + "."))
        out.append(case(f"alg {alg}, HMAC signature", "deny", signed({"alg": alg}, claims())))
    for alg, digest in [
        ("HS384", "sha384"),
        ("HS512", "sha512"),
        ("hs256", "sha256"),
        ("HS256 ", "sha256"),
        ("RS256", "sha256"),
        ("ES256", "sha256"),
        ("PS256", "sha256"),
        ("EdDSA", "sha256"),
    ]:
        out.append(
            case(
                f"alg {alg!r} signed with the secret",
                "deny",
                signed({"alg": alg}, claims(), digest=digest),
            )
        )
    odd_algs: list[Any] = [None, 256, ["HS256"], {"HS256": 1}, ""]
    for alg in odd_algs:
        out.append(case(f"alg {json.dumps(alg)}", "deny", signed({"alg": alg}, claims())))
    out.append(case("no alg", "deny", signed({"typ": "JWT"}, claims())))
    rsa_pem = (
        b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        b"-----END PUBLIC KEY-----\n"
    )
    out.append(
        case(
            "alg confusion: HS256 keyed with a public key PEM",
            "deny",
            signed(HS256_HEADER, claims(), secret=rsa_pem),
        )
    )
    # signatures
    head, payload, sig = VALID.split(".")
    sig_bytes = base64.urlsafe_b64decode(sig + "=")
    out += [
        case("signature stripped (two segments)", "deny", f"{head}.{payload}"),
        case("signature empty", "deny", f"{head}.{payload}."),
        case("signature truncated", "deny", f"{head}.{payload}.{b64url(sig_bytes[:16]).decode()}"),
        case("signature of another key", "deny", signed(HS256_HEADER, claims(), OTHER_SECRET)),
        case(
            "signature bit flipped",
            "deny",
            f"{head}.{payload}.{b64url(bytes([sig_bytes[0] ^ 1]) + sig_bytes[1:]).decode()}",
        ),
        case(
            "signature with non-canonical trailing bits",
            "deny",
            f"{head}.{payload}.{sig[:-1]}{'B' if sig[-1] == 'A' else 'A'}",
        ),
        case("signature doubled", "deny", f"{head}.{payload}.{sig}{sig}"),
        case(
            "signature of another payload",
            "deny",
            f"{head}.{b64url(json_bytes(claims(did='x'))).decode()}.{sig}",
        ),
    ]
    # exp
    for label, exp_json in [
        ("missing", None),
        ("string", '"4102444800"'),
        ("unicode-digit string", '"\\uff14102444800"'),
        ("true", "true"),
        ("false", "false"),
        ("null", "null"),
        ("list", "[4102444800]"),
        ("object", '{"v":4102444800}'),
        ("huge integer", "9" * 300),
        ("1e400", "1e400"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("beyond year 9999", "253402300800"),
        ("negative", "-1"),
        ("zero", "0"),
        ("past", str(PAST)),
        ("past float", f"{PAST}.5"),
    ]:
        payload_bytes = (
            b'{"pay":"' + pay_for(BINDING.encode()).encode() + b'"}'
            if exp_json is None
            else raw_payload(exp_json)
        )
        out.append(case(f"exp {label}", "deny", signed(HS256_HEADER, payload_bytes)))
    out.append(
        case("exp float in the future", "allow", signed(HS256_HEADER, claims(exp=FUTURE + 0.5)))
    )
    out.append(case("nbf in the future", "deny", signed(HS256_HEADER, claims(nbf=FUTURE - 10))))
    out.append(case("nbf in the past", "allow", signed(HS256_HEADER, claims(nbf=PAST))))
    out.append(case("nbf a string", "deny", signed(HS256_HEADER, claims(nbf="0"))))
    out.append(
        case("iat in the future is not checked", "allow", signed(HS256_HEADER, claims(iat=FUTURE)))
    )
    # encodings and structure
    good_payload = json_bytes(claims())
    out += [
        case(
            "BOM before the header",
            "deny",
            signed(b"\xef\xbb\xbf" + json_bytes(HS256_HEADER), claims()),
        ),
        case(
            "BOM before the payload", "deny", signed(HS256_HEADER, b"\xef\xbb\xbf" + good_payload)
        ),
        case("UTF-16 header", "deny", signed(json.dumps(HS256_HEADER).encode("utf-16"), claims())),
        case(
            "UTF-16-LE payload",
            "deny",
            signed(HS256_HEADER, json.dumps(claims()).encode("utf-16-le")),
        ),
        case("UTF-32 header", "deny", signed(json.dumps(HS256_HEADER).encode("utf-32"), claims())),
        case(
            "duplicate alg in the header", "deny", signed(b'{"alg":"none","alg":"HS256"}', claims())
        ),
        case(
            "duplicate exp in the payload",
            "deny",
            signed(HS256_HEADER, raw_payload(f'{PAST},"exp":{FUTURE}')),
        ),
        case("header is a list", "deny", signed(b"[]", claims())),
        case("payload is a string", "deny", signed(HS256_HEADER, b'"x"')),
        case("payload not JSON", "deny", signed(HS256_HEADER, b"{exp: 1}")),
        case(
            "invalid UTF-8 in the payload",
            "deny",
            signed(HS256_HEADER, good_payload[:-1] + b',"x":"\xff"}'),
        ),
    ]
    for parameter, value in [
        ("crit", ["exp"]),
        ("crit", []),
        ("b64", False),
        ("jku", "http://127.0.0.1/k"),
        ("x5u", "http://127.0.0.1/c"),
        ("jwk", {"kty": "oct", "k": "AA"}),
        ("x5c", ["MIIB"]),
    ]:
        out.append(
            case(
                f"header {parameter}={json.dumps(value)}",
                "deny",
                signed({**HS256_HEADER, parameter: value}, claims()),
            )
        )
    out.append(case("kid not a string", "deny", signed({**HS256_HEADER, "kid": 7}, claims())))
    for index in range(3):
        parts = VALID.split(".")
        parts[index] += "="
        out.append(case(f"padded segment {index}", "deny", ".".join(parts)))
        parts = VALID.split(".")
        parts[index] = parts[index][:4] + "+" + parts[index][5:]
        out.append(case(f"'+' in segment {index}", "deny", ".".join(parts)))
    out += [
        case("five segments", "deny", VALID + "." + VALID.split(".")[1] + ".x"),
        case("four segments", "deny", VALID + ".x"),
        case("one segment", "deny", VALID.replace(".", "")),
        case("empty token", "deny", ""),
        case("token of spaces", "deny", "   "),
        case(
            "leading space",
            "deny",
            " " + VALID,
            expect_through_nginx="allow",
            why="HTTP strips whitespace around a field value (RFC 9110 5.5)",
        ),
        case("tab inside", "deny", VALID[:10] + "\t" + VALID[10:]),
        case("Bearer prefix in the token header", "deny", "Bearer " + VALID),
        case("token in quotes", "deny", f'"{VALID}"'),
        case("no token header", "deny", None),
        case("4 KB token", "deny", signed(HS256_HEADER, claims(filler="x" * 3000))),
        case("8 KB token", "deny", signed(HS256_HEADER, claims(filler="x" * 6000))),
        case("64 KB token", "deny", "a" * 65_000),
        case(
            "token just under 4096 bytes", "allow", signed(HS256_HEADER, claims(filler="x" * 2800))
        ),
    ]
    # non-ASCII and control bytes in every header involved
    for label, value in [
        ("é", "\u00e9"),
        ("0xff", "\u00ff"),
        ("0x80", "\u0080"),
        ("0x01", "\u0001"),
        ("0x1f", "\u001f"),
        ("0x7f", "\u007f"),
        ("NUL", "\u0000"),
    ]:
        out.append(case(f"{label} inside the token", "deny", VALID[:20] + value + VALID[20:]))
        out.append(
            case(
                f"{label} inside Authorization",
                "deny",
                authorization=False,
                extra_headers=[["Authorization", BINDING + value]],
            )
        )
        # nginx replaces a client's X-Request-ID with its own; NUL it refuses itself (400).
        nul = {"expect_through_nginx": "deny", "why": "nginx refuses NUL (400)"}
        out.append(
            case(
                f"{label} in X-Request-ID, valid token",
                "allow",
                extra_headers=[["X-Request-ID", "id" + value]],
                **(nul if label == "NUL" else {}),
            )
        )
        # Any other header reaches authsvc, whose HTTP layer refuses control bytes (400).
        control = label in {"0x01", "0x1f", "0x7f", "NUL"}
        refused = {
            "expect_through_nginx": "deny",
            "why": "control bytes: authsvc's HTTP layer answers 400, nginx's include makes it 401",
        }
        out.append(
            case(
                f"{label} in another header, valid token",
                "allow",
                extra_headers=[["X-Client-Note", "note" + value]],
                **(refused if control else {}),
            )
        )
    # repeated headers
    out += [
        case("token header twice, same value", "deny", extra_headers=[["Approov-Token", VALID]]),
        case("token header twice, second empty", "deny", extra_headers=[["Approov-Token", ""]]),
        case("token header twice, second invalid", "deny", extra_headers=[["Approov-Token", "x"]]),
        case(
            "Authorization twice, different",
            "deny",
            extra_headers=[["Authorization", "Bearer other"]],
        ),
    ]
    # binding
    pay = pay_for(BINDING.encode())
    out += [
        case(
            "binding mismatch",
            "deny",
            authorization=False,
            extra_headers=[["Authorization", "Bearer other"]],
        ),
        case("binding header missing", "deny", authorization=False),
        case(
            "binding header empty",
            "deny",
            authorization=False,
            extra_headers=[["Authorization", ""]],
        ),
        case("pay missing", "deny", signed(HS256_HEADER, {"exp": FUTURE})),
        case(
            "pay in url-safe base64",
            "deny",
            signed(HS256_HEADER, claims(pay=pay.replace("+", "-").replace("/", "_"))),
        ),
        case("pay unpadded", "deny", signed(HS256_HEADER, claims(pay=pay.rstrip("=")))),
        case(
            "pay of the bearer credential only",
            "deny",
            signed(HS256_HEADER, claims(pay=pay_for(b"corpus-user"))),
        ),
        case(
            "pay hex",
            "deny",
            signed(HS256_HEADER, claims(pay=hashlib.sha256(BINDING.encode()).hexdigest())),
        ),
        case("pay null", "deny", signed(HS256_HEADER, claims(pay=None))),
        case("pay a number", "deny", signed(HS256_HEADER, claims(pay=1))),
        case("pay non-ASCII", "deny", signed(HS256_HEADER, claims(pay="\u00e9" * 44))),
    ]
    # every method, with a body and with a Content-Length but no body
    for method in METHODS:
        if method != "HEAD":
            out.append(
                case(
                    f"{method} with a body, valid",
                    "allow",
                    method=method,
                    body=base64.b64encode(b"a body " * 100).decode(),
                )
            )
            out.append(
                case(
                    f"{method} with a body, invalid",
                    "deny",
                    "x",
                    method=method,
                    body=base64.b64encode(b"a body").decode(),
                )
            )
        out.append(
            case(
                f"{method} with a Content-Length but no body, invalid",
                "deny",
                "x",
                method=method,
                content_length_without_body=1000,
            )
        )
        out.append(case(f"{method}, valid, no body", "allow", method=method))
    return out


def main() -> None:
    data = cases()
    names = [item["name"] for item in data]
    assert len(names) == len(set(names)), "case names must be unique"
    CASES_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n")
    print(f"{len(data)} cases written to {CASES_FILE}")


if __name__ == "__main__":
    main()
