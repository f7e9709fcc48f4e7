"""The one map from the shared error tree (what every client raises) to the gateway's answers."""

from __future__ import annotations

import pytest

from loom_common import errors
from loom_gateway.clients.errors import api_error


def _read(kind: type[errors.LoomError], detail: str, **kw) -> errors.LoomError:
    err = kind(f"svc: {kind.grpc_status}: {detail}", **kw)
    err.detail = detail  # as error_from_rpc sets it
    return err


@pytest.mark.parametrize(("err", "service", "status", "code"), [
    (_read(errors.InvalidArgument, "top_k: too big", field="top_k"), "rag", 400, "invalid_param"),
    (_read(errors.NotFound, "no such dataset"), "rag", 404, "not_found"),
    (_read(errors.AlreadyExists, "name taken"), "rag", 409, "dataset_name_duplicate"),
    (_read(errors.AlreadyExists, "name taken"), "tools", 409, "conflict"),
    (_read(errors.FailedPrecondition, "other model"), "rag", 400, "failed_precondition"),
    (_read(errors.PermissionDenied, "not yours"), "tools", 403, "forbidden"),
    (_read(errors.ResourceExhausted, "queue full"), "inference", 429, "too_many_requests"),
    (_read(errors.DeadlineExceeded, ""), "inference", 504, "gateway_timeout"),
    (_read(errors.Unavailable, "restarting"), "inference", 503, "service_unavailable"),
    (_read(errors.Internal, "boom"), "inference", 502, "bad_gateway"),
    (_read(errors.Aborted, "cancelled"), "inference", 502, "bad_gateway"),
])
def test_each_error_class_has_one_answer(err, service, status, code) -> None:
    out = api_error(err, service)
    assert (out.status, out.code) == (status, code)
    if isinstance(err, errors.InvalidArgument):
        assert out.field == "top_k" and out.message == "top_k: too big"  # the server's text, the field named


def test_a_subclass_is_answered_as_its_nearest_mapped_ancestor() -> None:
    class EmbeddingMismatch(errors.FailedPrecondition):
        code = "embedding_mismatch"

    assert api_error(_read(EmbeddingMismatch, "dims differ"), "rag").code == "failed_precondition"


def test_the_gateways_own_errors_are_loom_errors_with_the_matching_grpc_status() -> None:
    """One error tree in every service: an API error is a LoomError whose gRPC status follows its HTTP one."""
    from loom_gateway.domain import errors as api

    for err, grpc_status in [(api.BadRequest("x", field="f"), "INVALID_ARGUMENT"),
                             (api.NotFound("x"), "NOT_FOUND"), (api.Forbidden("x"), "PERMISSION_DENIED"),
                             (api.RateLimited("x"), "RESOURCE_EXHAUSTED"), (api.Overloaded("x"), "UNAVAILABLE"),
                             (api.Upstream("x", status=504), "DEADLINE_EXCEEDED"), (api.ApiError("x"), "INTERNAL")]:
        assert isinstance(err, errors.LoomError) and err.grpc_status == grpc_status
    assert api.BadRequest("x", field="f").body() == {"code": "invalid_param", "message": "x", "status": 400,
                                                     "field": "f"}
