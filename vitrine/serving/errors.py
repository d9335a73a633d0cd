"""Typed errors shared by servers and clients, and their gRPC status codes.

Servers raise these from plain Python logic; :func:`vitrine.serving.grpc_app.rpc` turns them into
a gRPC status. Clients turn a failed call back into the same type with :func:`from_rpc_error`, so
code on both sides speaks one vocabulary.
"""

from __future__ import annotations

import contextlib

import grpc

# gRPC's own retry machinery honours this trailing-metadata key (gRFC A6 "retry pushback").
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


class VitrineError(Exception):
    """Base of all errors with a gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class InvalidArgument(VitrineError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(VitrineError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(VitrineError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(VitrineError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(VitrineError):
    """No credentials, or credentials that are not valid (an unknown or revoked API key)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(VitrineError):
    """Valid credentials without the right to do this (an API key lacking the scope)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(VitrineError):
    """Overloaded: retry after ``retry_after_s`` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(VitrineError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(VitrineError):
    code = grpc.StatusCode.UNAVAILABLE


class Cancelled(VitrineError):
    code = grpc.StatusCode.CANCELLED


class Internal(VitrineError):
    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[VitrineError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unauthenticated,
        PermissionDenied,
        ResourceExhausted,
        DeadlineExceeded,
        Unavailable,
        Cancelled,
        Internal,
    )
}


def from_rpc_error(exc: grpc.RpcError) -> VitrineError:
    """The typed error for a failed call (``VitrineError`` itself for codes without a class)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(exc)
    retry_after = None
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        if key == RETRY_PUSHBACK_KEY:
            with contextlib.suppress(ValueError):
                retry_after = int(value) / 1000.0
    cls = _BY_CODE.get(code, VitrineError)
    err = cls(details, retry_after_s=retry_after)
    if cls is VitrineError:
        err.code = code
    return err
