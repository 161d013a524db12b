"""The OpenAPI document: valid, complete, and true to what the API does (schemathesis)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from items_api import items
from items_api.openapi import openapi_document


@pytest.fixture
def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def test_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["version"] == "1.2.3"


def test_every_route_is_documented_and_every_documented_operation_exists(shared_app, document):
    routes = set()
    for rule in shared_app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", "{id}", rule.rule)
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {
        (path, method)
        for path, operations in document["paths"].items()
        for method in operations
        if method != "parameters"
    }
    assert routes == documented


def test_the_name_rule_is_the_same_regular_expression(document):
    name = document["components"]["schemas"]["NewItem"]["properties"]["name"]
    assert name["pattern"] == items.NAME_PATTERN
    compiled = re.compile(name["pattern"])
    for accepted in ("x", "  padded  ", "x" * 255, "🧪" * 255):
        assert compiled.fullmatch(accepted)
        assert items.clean_name(accepted)[0] is not None
    for refused in ("", "   ", "x" * 256, "a\x00b"):
        assert not compiled.fullmatch(refused)
        assert items.clean_name(refused)[0] is None


# Built from the same function that serves /openapi.json (test_served_document_is_the_one_tested
# checks that), because schemathesis must know the operations when pytest collects the tests.
schema = schemathesis.openapi.from_dict(openapi_document("1.2.3"))


def test_served_document_is_the_one_tested(document):
    assert document == openapi_document("1.2.3")


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_document(case, shared_app):
    """Positive and negative inputs from the document: never a 5xx (the database is up), every
    status, header and body as documented, and invalid input refused.

    A schema-valid request may still be refused where the document cannot say why (a cursor
    that is not one of ours, offset together with cursor): so no positive_data_acceptance.
    """
    case.call_and_validate(app=shared_app, excluded_checks=[positive_data_acceptance])
