"""A CustomResourceDefinition's schema as a strict JSON Schema, for `check-jsonschema`.

    python -m tests.deploy.crd_schema CRD.yaml VERSION SOURCE > deploy/kubernetes/schemas/X.json

Strict as `kubectl apply --validate=strict` is: an object that declares its properties takes no
others (a misspelt field fails, where the API server would silently drop it), and apiVersion and
kind must be the CRD's. SOURCE (repository, tag, path) is recorded in the schema.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import yaml

_SUBSCHEMA_LISTS = ("allOf", "anyOf", "oneOf")


def make_strict(schema: dict[str, Any]) -> None:
    """Close every object that lists its properties, unless it keeps unknown fields on purpose."""
    properties = schema.get("properties")
    if properties is not None:
        keeps_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        if "additionalProperties" not in schema and not keeps_unknown:
            schema["additionalProperties"] = False
        for child in properties.values():
            make_strict(child)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(key), dict):
            make_strict(schema[key])
    for key in _SUBSCHEMA_LISTS:
        for child in schema.get(key, ()):
            make_strict(child)


def as_draft7(schema: dict[str, Any]) -> None:
    """OpenAPI 3.0's boolean `exclusiveMaximum`/`exclusiveMinimum` (beside `maximum`/`minimum`)
    as draft 7's numbers (Contour's CRDs use them)."""
    for exclusive, bound in (("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")):
        if isinstance(schema.get(exclusive), bool) and schema.pop(exclusive):
            schema[exclusive] = schema.pop(bound)
    for value in schema.values():
        if isinstance(value, dict):
            as_draft7(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    as_draft7(item)


def from_crd(crd: dict[str, Any], version: str, source: str) -> dict[str, Any]:
    spec = crd["spec"]
    (served,) = (v for v in spec["versions"] if v["name"] == version)
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    make_strict(schema)
    as_draft7(schema)
    schema["properties"]["apiVersion"] = {"const": f"{spec['group']}/{version}"}
    schema["properties"]["kind"] = {"const": spec["names"]["kind"]}
    schema["properties"].setdefault("metadata", {"type": "object"})  # some CRDs leave it out
    schema["required"] = sorted({*schema.get("required", ()), "apiVersion", "kind", "metadata"})
    return {"$schema": "http://json-schema.org/draft-07/schema#", "$comment": source, **schema}


def main(argv: list[str]) -> None:
    path, version, source = argv
    with open(path) as crd_file:
        crd = next(doc for doc in yaml.safe_load_all(crd_file) if doc)
    json.dump(from_crd(crd, version, source), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
