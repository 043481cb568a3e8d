"""Problem details: the RFC 9457 document, its media type and headers, and the status mapping."""

from __future__ import annotations

import json

from shopkit.problems import (
    PROBLEM_JSON,
    Conflict,
    NotFound,
    Problem,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    for_status,
)


def test_a_problem_body_carries_the_rfc_9457_members_and_the_request_id() -> None:
    # given a named situation with an extension member
    problem = Conflict("the order was already paid", order_id="o-1")
    # when it is rendered
    body = problem.body("/api/v1/orders/o-1", "req-1")
    # then it has every member a client relies on
    assert body == {
        "type": "https://shop.local/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "the order was already paid",
        "instance": "/api/v1/orders/o-1",
        "order_id": "o-1",
        "request_id": "req-1",
    }


def test_field_errors_appear_only_when_given() -> None:
    failed = ValidationFailed(errors={"email": ["Not a valid email address."]})
    assert failed.body("/x", None)["errors"] == {"email": ["Not a valid email address."]}
    assert "errors" not in NotFound().body("/x", None)
    assert "request_id" not in NotFound().body("/x", None)


def test_at_most_twenty_field_errors_are_echoed_and_the_rest_counted() -> None:
    # given a body with 50,000 unknown fields, one of them with a very long name, and a nested
    # field with three errors of its own
    errors: dict[str, object] = {"x" * 5000: ["Unknown field."]}
    errors.update({f"field{n}": ["Unknown field."] for n in range(50_000)})
    errors["variants"] = {"0": {"sku": ["bad"]}, "1": {"sku": ["bad"]}, "2": {"sku": ["bad"]}}

    # when it is the 422
    body = ValidationFailed("the request has invalid fields", errors=errors).body("/x", None)

    # then twenty errors are shown, names cut short, and the body says how many were left out
    assert len(body["errors"]) == 20
    assert max(len(name) for name in body["errors"]) == 100
    assert body["errors_omitted"] == 50_004 - 20
    assert body["detail"] == "the request has invalid fields (49984 more field errors not shown)"
    assert len(json.dumps(body)) < 2000


def test_nested_field_errors_count_each_field() -> None:
    errors = {f"v{n}": {"sku": ["bad"], "price": {"amount": ["bad"]}} for n in range(15)}
    body = ValidationFailed(errors=errors).body("/x", None)
    assert len(body["errors"]) == 10
    assert body["errors_omitted"] == 10


def test_a_few_field_errors_are_echoed_whole() -> None:
    errors = {f"f{n}": ["bad"] for n in range(20)}
    body = ValidationFailed("invalid", errors=errors).body("/x", None)
    assert body["errors"] == errors
    assert body["detail"] == "invalid"
    assert "errors_omitted" not in body


def test_the_detail_defaults_to_the_title() -> None:
    assert NotFound().detail == "Not found"


def test_a_problem_response_is_problem_json_with_its_status_and_headers() -> None:
    # given an authentication failure
    response = Unauthorized("token expired").response("/me", "req-2")
    # then the response names the scheme and carries the document
    assert response.status == 401
    assert response.content_type == PROBLEM_JSON
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert response.text is not None
    assert json.loads(response.text)["detail"] == "token expired"


def test_too_many_requests_asks_to_wait_at_least_a_second() -> None:
    assert TooManyRequests(0).headers["Retry-After"] == "1"
    assert TooManyRequests(30).headers["Retry-After"] == "30"


def test_known_statuses_map_to_their_named_problem() -> None:
    assert isinstance(for_status(404), NotFound)
    assert for_status(422, "bad").detail == "bad"


def test_an_unknown_status_keeps_its_code() -> None:
    # given a status the kit has no name for
    problem = for_status(418, "teapot")
    # then it is still a problem with that status, and the class default is untouched
    assert isinstance(problem, Problem)
    assert problem.status == 418
    assert Problem.status == 500
