"""The providers' own OpenAPI descriptions (../shared/provider-specs) as JSON Schema validators."""

import copy
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from jsonschema import Draft7Validator, Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

REPOSITORY = Path(__file__).resolve().parents[2]


def find_specs():
    """PROVIDER_SPECS_DIR, else `shared/provider-specs` beside the repository (../shared), or
    beside a folder above it (a worktree or a clone kept one level deeper)."""
    if os.environ.get("PROVIDER_SPECS_DIR"):
        return Path(os.environ["PROVIDER_SPECS_DIR"])
    for folder in REPOSITORY.parents:
        if (folder / "shared" / "provider-specs").is_dir():
            return folder / "shared" / "provider-specs"
    raise FileNotFoundError("provider specs not found: set PROVIDER_SPECS_DIR or keep ../shared/provider-specs")


SPECS = find_specs()

E164 = re.compile(r"^\+[1-9]\d{6,14}$")

formats = FormatChecker()


@formats.checks("phone-number")
def is_phone_number(value):
    # Twilio also takes channel addresses (whatsapp:+1...); we only ever send plain E.164.
    return isinstance(value, str) and bool(E164.match(value))


@formats.checks("uri")
def is_uri(value):
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc)


def nullable_to_json_schema(node):
    """OpenAPI 3.0's `nullable: true` is JSON Schema's type [t, "null"]."""
    if isinstance(node, dict):
        node = {key: nullable_to_json_schema(value) for key, value in node.items()}
        if node.pop("nullable", False) and "type" in node:
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [nullable_to_json_schema(item) for item in node]
    return node


@lru_cache
def spec(name):
    document = json.loads((SPECS / name).read_text())
    if document["openapi"].startswith("3.0"):
        return nullable_to_json_schema(document), DRAFT7, Draft7Validator
    return document, DRAFT202012, Draft202012Validator


def pointer(*parts):
    return "#/" + "/".join(str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def validator(spec_name, *path):
    """A validator for the schema at `path` inside the spec, with every $ref resolvable."""
    document, specification, validator_class = spec(spec_name)
    uri = f"urn:provider-spec:{spec_name}"
    registry = Registry().with_resource(uri, Resource.from_contents(copy.deepcopy(document), specification))
    return validator_class({"$ref": uri + pointer(*path)}, registry=registry, format_checker=formats)


def request_body_validator(spec_name, api_path, method, content_type):
    document, _, _ = spec(spec_name)
    body = document["paths"][api_path][method]["requestBody"]
    if "$ref" in body:
        return validator(spec_name, *body["$ref"].removeprefix("#/").split("/"), "content", content_type, "schema")
    return validator(spec_name, "paths", api_path, method, "requestBody", "content", content_type, "schema")


def response_validator(spec_name, api_path, method, status, content_type="application/json"):
    return validator(spec_name, "paths", api_path, method, "responses", str(status), "content", content_type, "schema")


def errors(validator_, instance):
    return sorted(f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator_.iter_errors(instance))
