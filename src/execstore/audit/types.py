"""The public types of the PHI audit log: what a caller records and what it reads back."""

from __future__ import annotations

import ipaddress
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from execstore.repository import PublicModel, UtcDateTime
from execstore.textlimits import fit_text

__all__ = ["AuditReceipt", "AuditRecord", "PhiAccess"]

USER_AGENT_LIMIT = 1000
"""User agents longer than this are fitted (marker kept), the one field cut on input."""

_Term = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_Ref = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class PhiAccess(BaseModel):
    """One access to protected health information, as the caller reports it.

    ``action`` (``view``, ``export``, ...), ``resource_type`` and ``purpose`` are short
    terms; ``patient_ref`` is whatever identifies the patient to the organization (an
    MRN, a member id); ``details`` any JSON value (stored canonically: object keys
    sorted, NUL characters removed). The time is the time of recording.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: _Term
    resource_type: _Term
    resource_id: _Ref | None = None
    actor_id: uuid.UUID | None = None
    patient_ref: _Ref | None = None
    claim_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    purpose: _Term | None = None
    source_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    user_agent: str | None = None
    details: Any = None

    @field_validator("user_agent")
    @classmethod
    def _fit_user_agent(cls, value: str | None) -> str | None:
        return fit_text(value, USER_AGENT_LIMIT)


class AuditRecord(PublicModel):
    """A stored PHI access record: its place in the chain and every field it was given."""

    seq: int
    created_at: UtcDateTime
    id: uuid.UUID
    organization_id: uuid.UUID
    actor_id: uuid.UUID | None
    action: str
    resource_type: str
    resource_id: str | None
    patient_ref: str | None
    claim_id: uuid.UUID | None
    job_id: uuid.UUID | None
    purpose: str | None
    source_ip: str | None
    """An IP address, or for legacy records whatever text the old table held."""
    user_agent: str | None
    details: Any = Field(default=None)


class AuditReceipt(PublicModel):
    """Where a recorded access landed in its organization's chain."""

    organization_id: uuid.UUID
    id: uuid.UUID
    seq: int | None
    """None while a SQLite record waits for its unit to end (see ``AuditRepository``)."""
    created_at: UtcDateTime | None
