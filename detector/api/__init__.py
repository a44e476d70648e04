"""The subscriber-lookup API (issue 6): inbound HTTP for police, analysts, regulators and
admins, with bearer-token and mutual-TLS authentication, per-role fields, per-client rate
limits and a hash-chained audit log. See docs/api.md."""

from detector.api.audit import AuditProblem, AuditReport, verify_audit
from detector.api.auth import Credentials, Identity
from detector.api.config import ApiConfig

__all__ = ["ApiConfig", "AuditProblem", "AuditReport", "Credentials", "Identity", "make_app",
           "start_api", "verify_audit"]


def __getattr__(name: str):
    # The assembly imports every handler module, and they import submodules of this package:
    # it is loaded when first asked for, so that importing a submodule (the kit, the queries)
    # does not assemble the whole application.
    if name in ("make_app", "start_api"):
        from detector.api import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
