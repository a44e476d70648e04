"""The subscriber-lookup API (issue 6): inbound HTTP for police, analysts, regulators and
admins, with bearer-token and mutual-TLS authentication, per-role fields, per-client rate
limits and a hash-chained audit log. See docs/api.md."""

from detector.api.app import make_app, start_api
from detector.api.audit import AuditProblem, AuditReport, verify_audit
from detector.api.auth import Credentials, Identity
from detector.api.config import ApiConfig

__all__ = ["ApiConfig", "AuditProblem", "AuditReport", "Credentials", "Identity", "make_app",
           "start_api", "verify_audit"]
