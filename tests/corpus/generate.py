"""Writes tests/corpus/cases.json: hostile requests and the outcome each must get.

Run `python -m tests.corpus.generate` after changing a case. Tokens are signed with Approov's
public dummy secret and, when valid, expire in 2100, so the committed data stays valid.
Header values are latin-1 strings, i.e. any bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tests.support.tokens import HS256_HEADER, OTHER_SECRET, b64url, json_bytes, pay_for, sign

CASES_FILE = Path(__file__).with_name("cases.json")
BINDING = "Bearer corpus-user"
FUTURE = 4_102_444_800  # 2100-01-01
PAST = 1_600_000_000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"  # base64url
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def claims(**extra: Any) -> dict[str, Any]:
    return {"exp": FUTURE, "did": "corpus", "pay": pay_for(BINDING.encode()), **extra}


VALID = sign(HS256_HEADER, claims())


def case(name: str, reason: str, token: str | None = VALID, **options: Any) -> dict[str, Any]:
    """A request and the reason code authsvc must answer it with (`ok`: allowed)."""
    headers: list[list[str]] = []
    if token is not None:
        headers.append(["Approov-Token", token])
    if options.pop("authorization", True):
        headers.append(["Authorization", BINDING])
    headers += options.pop("extra_headers", [])
    return {
        "name": name,
        "expect": "allow" if reason == "ok" else "deny",
        "reason": reason,
        "method": options.pop("method", "GET"),
        "headers": headers,
        "body": options.pop("body", None),
        "content_length_without_body": options.pop("content_length_without_body", 0),
        **options,
    }


def raw_payload(exp_json: str) -> bytes:
    return b'{"exp":' + exp_json.encode() + b',"pay":"' + pay_for(BINDING.encode()).encode() + b'"}'


def cases() -> list[dict[str, Any]]:
    out = [case("valid token and binding", "ok")]
    # alg none and case variants, algorithms a secret must not enable
    for alg in ["none", "None", "NONE", "nOnE"]:
        unsigned = (
            b64url(json_bytes({"alg": alg})).decode() + "." + b64url(json_bytes(claims())).decode()
        )
        out.append(case(f"alg {alg}, empty signature", "token_malformed", unsigned + "."))
        out.append(
            case(f"alg {alg}, HMAC signature", "alg_not_allowed", sign({"alg": alg}, claims()))
        )
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
                "alg_not_allowed",
                sign({"alg": alg}, claims(), digest=digest),
            )
        )
    odd_algs: list[Any] = [None, 256, ["HS256"], {"HS256": 1}, ""]
    for alg in odd_algs:
        out.append(case(f"alg {json.dumps(alg)}", "alg_not_allowed", sign({"alg": alg}, claims())))
    out.append(case("no alg", "alg_not_allowed", sign({"typ": "JWT"}, claims())))
    rsa_pem = (
        b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        b"-----END PUBLIC KEY-----\n"
    )
    out.append(
        case(
            "alg confusion: HS256 keyed with a public key PEM",
            "signature_invalid",
            sign(HS256_HEADER, claims(), secret=rsa_pem),
        )
    )
    # signatures
    head, payload, sig = VALID.split(".")
    sig_bytes = base64.urlsafe_b64decode(sig + "=")
    out += [
        case("signature stripped (two segments)", "token_malformed", f"{head}.{payload}"),
        case("signature empty", "token_malformed", f"{head}.{payload}."),
        case(
            "signature truncated",
            "signature_invalid",
            f"{head}.{payload}.{b64url(sig_bytes[:16]).decode()}",
        ),
        case(
            "signature of another key",
            "signature_invalid",
            sign(HS256_HEADER, claims(), OTHER_SECRET),
        ),
        case(
            "signature bit flipped",
            "signature_invalid",
            f"{head}.{payload}.{b64url(bytes([sig_bytes[0] ^ 1]) + sig_bytes[1:]).decode()}",
        ),
        case(
            "signature with non-canonical trailing bits",
            "token_malformed",
            # Same bytes, other spelling: the last character's unused low bits set.
            f"{head}.{payload}.{sig[:-1]}{ALPHABET[ALPHABET.index(sig[-1]) | 0b11]}",
        ),
        case("signature doubled", "signature_invalid", f"{head}.{payload}.{sig}{sig}"),
        case(
            "signature of another payload",
            "signature_invalid",
            f"{head}.{b64url(json_bytes(claims(did='x'))).decode()}.{sig}",
        ),
    ]
    # exp
    for label, exp_json, reason in [
        ("missing", None, "claims_invalid"),
        ("string", '"4102444800"', "claims_invalid"),
        ("unicode-digit string", '"\\uff14102444800"', "claims_invalid"),
        ("true", "true", "claims_invalid"),
        ("false", "false", "claims_invalid"),
        ("null", "null", "claims_invalid"),
        ("list", "[4102444800]", "claims_invalid"),
        ("object", '{"v":4102444800}', "claims_invalid"),
        ("huge integer", "9" * 300, "claims_invalid"),
        ("1e400", "1e400", "claims_invalid"),  # JSON reads it as infinity
        ("NaN", "NaN", "token_malformed"),  # not JSON
        ("Infinity", "Infinity", "token_malformed"),
        ("beyond year 9999", "253402300800", "claims_invalid"),
        ("negative", "-1", "expired"),
        ("zero", "0", "expired"),
        ("past", str(PAST), "expired"),
        ("past float", f"{PAST}.5", "expired"),
    ]:
        payload_bytes = (
            b'{"pay":"' + pay_for(BINDING.encode()).encode() + b'"}'
            if exp_json is None
            else raw_payload(exp_json)
        )
        out.append(case(f"exp {label}", reason, sign(HS256_HEADER, payload_bytes)))
    out.append(case("exp float in the future", "ok", sign(HS256_HEADER, claims(exp=FUTURE + 0.5))))
    out.append(
        case("nbf in the future", "not_yet_valid", sign(HS256_HEADER, claims(nbf=FUTURE - 10)))
    )
    out.append(case("nbf in the past", "ok", sign(HS256_HEADER, claims(nbf=PAST))))
    out.append(case("nbf a string", "claims_invalid", sign(HS256_HEADER, claims(nbf="0"))))
    out.append(
        case("iat in the future is not checked", "ok", sign(HS256_HEADER, claims(iat=FUTURE)))
    )
    # encodings and structure
    good_payload = json_bytes(claims())
    out += [
        case(
            "BOM before the header",
            "token_malformed",
            sign(b"\xef\xbb\xbf" + json_bytes(HS256_HEADER), claims()),
        ),
        case(
            "BOM before the payload",
            "token_malformed",
            sign(HS256_HEADER, b"\xef\xbb\xbf" + good_payload),
        ),
        case(
            "UTF-16 header",
            "token_malformed",
            sign(json.dumps(HS256_HEADER).encode("utf-16"), claims()),
        ),
        case(
            "UTF-16-LE payload",
            "token_malformed",
            sign(HS256_HEADER, json.dumps(claims()).encode("utf-16-le")),
        ),
        case(
            "UTF-32 header",
            "token_malformed",
            sign(json.dumps(HS256_HEADER).encode("utf-32"), claims()),
        ),
        case(
            "duplicate alg in the header",
            "token_malformed",
            sign(b'{"alg":"none","alg":"HS256"}', claims()),
        ),
        case(
            "duplicate exp in the payload",
            "token_malformed",
            sign(HS256_HEADER, raw_payload(f'{PAST},"exp":{FUTURE}')),
        ),
        case("header is a list", "token_malformed", sign(b"[]", claims())),
        case("payload is a string", "token_malformed", sign(HS256_HEADER, b'"x"')),
        case("payload not JSON", "token_malformed", sign(HS256_HEADER, b"{exp: 1}")),
        case(
            "invalid UTF-8 in the payload",
            "token_malformed",
            sign(HS256_HEADER, good_payload[:-1] + b',"x":"\xff"}'),
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
                "token_malformed",
                sign({**HS256_HEADER, parameter: value}, claims()),
            )
        )
    out.append(
        case("kid not a string", "token_malformed", sign({**HS256_HEADER, "kid": 7}, claims()))
    )
    for index in range(3):
        parts = VALID.split(".")
        parts[index] += "="
        out.append(case(f"padded segment {index}", "token_malformed", ".".join(parts)))
        parts = VALID.split(".")
        parts[index] = parts[index][:4] + "+" + parts[index][5:]
        out.append(case(f"'+' in segment {index}", "token_malformed", ".".join(parts)))
    out += [
        case("five segments", "token_malformed", VALID + "." + VALID.split(".")[1] + ".x"),
        case("four segments", "token_malformed", VALID + ".x"),
        case("one segment", "token_malformed", VALID.replace(".", "")),
        case("empty token", "token_missing", ""),
        # RFC 9110 5.5: whitespace around a field value is not part of it, whatever the server.
        case("token of spaces", "token_missing", " \t "),
        case("leading space", "ok", " " + VALID),
        case("trailing space", "ok", VALID + " "),
        case("trailing tab", "ok", VALID + "\t"),
        case(
            "Authorization with surrounding whitespace",
            "ok",
            authorization=False,
            extra_headers=[["Authorization", f"\t{BINDING}  "]],
        ),
        case("tab inside", "token_malformed", VALID[:10] + "\t" + VALID[10:]),
        case("Bearer prefix in the token header", "token_malformed", "Bearer " + VALID),
        case("token in quotes", "token_malformed", f'"{VALID}"'),
        case("no token header", "token_missing", None),
        case("4 KB token", "token_too_long", sign(HS256_HEADER, claims(filler="x" * 3000))),
        case(
            "8 KB token",
            "token_too_long",
            sign(HS256_HEADER, claims(filler="x" * 6000)),
            nginx_refuses="a header over large_client_header_buffers (8k)",
        ),
        case(
            "64 KB token",
            "token_too_long",
            "a" * 65_000,
            nginx_refuses="a header over large_client_header_buffers (8k)",
        ),
        case("token just under 4096 bytes", "ok", sign(HS256_HEADER, claims(filler="x" * 2800))),
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
        # Control bytes: authsvc's HTTP layer answers 400 before any decision (nginx's include
        # makes it a 401, and logs no reason).
        control = label in {"0x01", "0x1f", "0x7f", "NUL"}
        refused: dict[str, str] = {
            "reason_through_nginx": "",
            "why": "control bytes: authsvc's HTTP layer answers 400, nginx's include makes it 401",
        }
        if label == "NUL":
            refused = {"nginx_refuses": "NUL in a header", "expect_through_nginx": "deny"}
        out.append(
            case(
                f"{label} inside the token",
                "token_malformed",
                VALID[:20] + value + VALID[20:],
                **(refused if control else {}),
            )
        )
        out.append(
            case(
                f"{label} inside Authorization",
                "binding_mismatch",
                authorization=False,
                extra_headers=[["Authorization", BINDING + value]],
                **(refused if control else {}),
            )
        )
        # nginx replaces a client's X-Request-ID with its own; NUL it refuses itself (400).
        nul = {"expect_through_nginx": "deny", "nginx_refuses": "NUL in a header"}
        out.append(
            case(
                f"{label} in X-Request-ID, valid token",
                "ok",
                extra_headers=[["X-Request-ID", "id" + value]],
                **(nul if label == "NUL" else {}),
            )
        )
        # Any other header reaches authsvc too, whose HTTP layer refuses control bytes (400).
        out.append(
            case(
                f"{label} in another header, valid token",
                "ok",
                extra_headers=[["X-Client-Note", "note" + value]],
                **({"expect_through_nginx": "deny", **refused} if control else {}),
            )
        )
    # repeated headers
    out += [
        case(
            "token header twice, same value",
            "token_duplicated",
            extra_headers=[["Approov-Token", VALID]],
        ),
        case(
            "token header twice, second empty",
            "token_duplicated",
            extra_headers=[["Approov-Token", ""]],
        ),
        case(
            "token header twice, second invalid",
            "token_duplicated",
            extra_headers=[["Approov-Token", "x"]],
        ),
        case(
            "Authorization twice, different",
            "binding_header_duplicated",
            extra_headers=[["Authorization", "Bearer other"]],
            nginx_refuses="a duplicate Authorization header",
        ),
    ]
    # binding
    pay = pay_for(BINDING.encode())
    out += [
        case(
            "binding mismatch",
            "binding_mismatch",
            authorization=False,
            extra_headers=[["Authorization", "Bearer other"]],
        ),
        case("binding header missing", "binding_header_missing", authorization=False),
        case(
            "binding header empty",
            "binding_header_missing",
            authorization=False,
            extra_headers=[["Authorization", ""]],
        ),
        case("pay missing", "binding_missing", sign(HS256_HEADER, {"exp": FUTURE})),
        case(
            "pay in url-safe base64",
            "binding_mismatch",
            sign(HS256_HEADER, claims(pay=pay.replace("+", "-").replace("/", "_"))),
        ),
        case("pay unpadded", "binding_mismatch", sign(HS256_HEADER, claims(pay=pay.rstrip("=")))),
        case(
            "pay of the bearer credential only",
            "binding_mismatch",
            sign(HS256_HEADER, claims(pay=pay_for(b"corpus-user"))),
        ),
        case(
            "pay hex",
            "binding_mismatch",
            sign(HS256_HEADER, claims(pay=hashlib.sha256(BINDING.encode()).hexdigest())),
        ),
        case("pay null", "binding_mismatch", sign(HS256_HEADER, claims(pay=None))),
        case("pay a number", "binding_mismatch", sign(HS256_HEADER, claims(pay=1))),
        case("pay non-ASCII", "binding_mismatch", sign(HS256_HEADER, claims(pay="\u00e9" * 44))),
    ]
    # every method, with a body and with a Content-Length but no body
    for method in METHODS:
        if method != "HEAD":
            out.append(
                case(
                    f"{method} with a body, valid",
                    "ok",
                    method=method,
                    body=base64.b64encode(b"a body " * 100).decode(),
                )
            )
            out.append(
                case(
                    f"{method} with a body, invalid",
                    "token_malformed",
                    "x",
                    method=method,
                    body=base64.b64encode(b"a body").decode(),
                )
            )
        out.append(
            case(
                f"{method} with a Content-Length but no body, invalid",
                "token_malformed",
                "x",
                method=method,
                content_length_without_body=1000,
            )
        )
        out.append(case(f"{method}, valid, no body", "ok", method=method))
    return out


def main() -> None:
    data = cases()
    names = [item["name"] for item in data]
    assert len(names) == len(set(names)), "case names must be unique"
    CASES_FILE.write_text(json.dumps(data, indent=1, ensure_ascii=True) + "\n")
    print(f"{len(data)} cases written to {CASES_FILE}")


if __name__ == "__main__":
    main()
