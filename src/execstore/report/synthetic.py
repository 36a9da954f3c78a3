"""A realistic synthetic platform: organizations, jobs and everything a job leaves behind.

Used by ``execstore storage-report --simulate`` and by ``execstore demo``. Volumes and
size distributions follow the plan's per-job figures: about 60 log lines (messages around
190 characters, half with small metadata), a RAG context of 10-50 rules drawn with
Zipf-like popularity from a rule base of a few thousand (condition and action 100-1,000
characters), a result output of 10-50 KB with 2-10 screenshots, the metadata lifecycle
(created, started, about a dozen progress updates, completed or failed) and 2-10 PHI
audit records of 1-3 KB each. Everything is drawn from a seeded ``random.Random``, so a
run is reproducible; the shapes are the platform's (camelCase JSON), not execstore's.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["Platform", "SyntheticJob", "SyntheticOrganization"]

PAYERS: Final = [
    ("Aetna", "60054"),
    ("Cigna", "62308"),
    ("UnitedHealthcare", "87726"),
    ("Humana", "61101"),
    ("Blue Cross Blue Shield of Texas", "84980"),
    ("Anthem Blue Cross", "47198"),
    ("Kaiser Permanente", "94135"),
    ("Molina Healthcare", "20149"),
    ("Medicare Part B", "00882"),
    ("Texas Medicaid", "617591011"),
    ("Tricare East", "99726"),
    ("Oscar Health", "OSCAR"),
]
MODIFIERS: Final = ["25", "59", "GT", "95", "26", "TC", "LT", "RT", "XU", "XS", "GA", "KX"]
STEPS: Final = [
    "open portal",
    "log in",
    "accept notice",
    "search member",
    "open eligibility",
    "open claim",
    "read claim status",
    "download remittance",
    "parse EOB",
    "record result",
    "submit appeal",
    "verify submission",
]
ACTIONS: Final = ["view", "export", "update", "print", "search"]
RESOURCES: Final = ["claim", "patient", "eligibility", "remittance", "document"]
PURPOSES: Final = ["treatment", "payment", "operations"]
AGENTS: Final = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "claim-bot/7.3.1 (workflow-processor; +https://example.invalid/bot)",
    "python-httpx/0.28.1",
]
WORDS: Final = [
    "claim",
    "member",
    "payer",
    "portal",
    "status",
    "denied",
    "paid",
    "pending",
    "eligibility",
    "coverage",
    "benefit",
    "deductible",
    "copay",
    "coinsurance",
    "authorization",
    "referral",
    "provider",
    "npi",
    "taxonomy",
    "modifier",
    "procedure",
    "diagnosis",
    "icd",
    "cpt",
    "hcpcs",
    "units",
    "charge",
    "allowed",
    "adjustment",
    "remittance",
    "eob",
    "era",
    "appeal",
    "resubmission",
    "timely",
    "filing",
    "limit",
    "frontier",
    "rendering",
    "billing",
    "facility",
    "place",
    "service",
    "date",
    "plan",
    "group",
    "subscriber",
    "dependent",
    "relationship",
    "primary",
    "secondary",
    "tertiary",
]
LEVELS: Final = ["DEBUG", "INFO", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR"]


def _sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        word = rng.choice(WORDS)
        if rng.random() < 0.08:
            word = "".join(
                rng.choices(string.ascii_uppercase + string.digits, k=rng.randint(5, 11))
            )
        words.append(word)
        size += len(word) + 1
    text = " ".join(words)[:chars]
    return text[:1].upper() + text[1:] + "."


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of the retrieval base."""

    rule_id: str
    rule_type: str
    condition: str
    action: str


@dataclass(slots=True)
class SyntheticOrganization:
    """An organization and its reference data."""

    id: uuid.UUID
    name: str
    workflows: list[tuple[uuid.UUID, str]]
    clients: list[tuple[uuid.UUID, str, str]]
    credentials: list[tuple[uuid.UUID, str, str]]
    users: list[uuid.UUID]


@dataclass(slots=True)
class SyntheticJob:
    """One job and everything it leaves behind, in the platform's own shapes."""

    id: uuid.UUID
    organization: SyntheticOrganization
    workflow: tuple[uuid.UUID, str]
    client: tuple[uuid.UUID, str, str]
    claim_id: uuid.UUID
    patient_name: str
    patient_id: str
    credentials: list[tuple[uuid.UUID, str, str]]
    created_at: dt.datetime
    started_at: dt.datetime
    completed_at: dt.datetime
    succeeded: bool
    error_code: str | None
    error_message: str | None
    total_steps: int
    progress: list[int]
    """Completed-step counts of the progress updates, in order."""
    output: dict[str, Any]
    logs: list[dict[str, Any]]
    rag: dict[str, Any]
    audit: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_ms(self) -> int:
        """From start to completion."""
        return int((self.completed_at - self.started_at).total_seconds() * 1000)


class Platform:
    """A seeded generator of organizations and jobs over a month."""

    def __init__(
        self,
        *,
        seed: int = 7,
        organizations: int = 5,
        rules: int = 3000,
        month_start: dt.datetime | None = None,
        days: int = 30,
    ) -> None:
        self.rng = random.Random(seed)
        self.month_start = month_start or dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        self.days = days
        self.organizations = [self._organization(i) for i in range(organizations)]
        self.rules = [self._rule(i) for i in range(rules)]
        # Zipf-like popularity: rule i is drawn with weight 1/(i+1).
        self._rule_weights = list(itertools.accumulate(1 / (i + 1) for i in range(rules)))
        # Skewed organization sizes: the first holds about a third of the jobs.
        self._org_weights = list(
            itertools.accumulate([organizations] + [1.0] * (organizations - 1))
        )

    def _organization(self, index: int) -> SyntheticOrganization:
        rng = self.rng
        return SyntheticOrganization(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            name=f"{rng.choice(['North', 'Lakeside', 'Summit', 'Harbor', 'Valley'])} "
            f"{rng.choice(['Clinic', 'Medical Group', 'Billing', 'Health Partners'])} {index}",
            workflows=[
                (uuid.UUID(int=rng.getrandbits(128), version=4), name)
                for name in rng.sample(
                    [
                        "Claim status check",
                        "Eligibility check",
                        "Appeal submission",
                        "Remittance download",
                        "Prior authorization",
                        "Denial follow-up",
                    ],
                    k=4,
                )
            ],
            clients=[
                (
                    uuid.UUID(int=rng.getrandbits(128), version=4),
                    f"Dr. {rng.choice(['Lee', 'Patel', 'Garcia', 'Nguyen', 'Smith', 'Khan'])} "
                    f"{rng.choice(['Family Practice', 'Orthopedics', 'Cardiology', 'PT'])}",
                    f"1{rng.randint(100000000, 999999999)}",
                )
                for _ in range(rng.randint(3, 12))
            ],
            credentials=[
                (uuid.UUID(int=rng.getrandbits(128), version=4), f"{payer} portal {n}", payer)
                for n, (payer, _) in enumerate(rng.sample(PAYERS, k=6))
            ],
            users=[uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(8)],
        )

    def _rule(self, index: int) -> Rule:
        rng = self.rng
        return Rule(
            rule_id=f"R-{index:05d}",
            rule_type=rng.choice(["billing", "coding", "eligibility", "payer", "timely_filing"]),
            condition=_sentence(rng, int(rng.triangular(100, 1000, 250))),
            action=_sentence(rng, int(rng.triangular(100, 1000, 250))),
        )

    def jobs(self, count: int) -> list[SyntheticJob]:
        """``count`` jobs spread over the month, oldest first."""
        made = [self.job() for _ in range(count)]
        made.sort(key=lambda job: job.created_at)
        return made

    def job(self) -> SyntheticJob:
        """One job with its whole footprint."""
        rng = self.rng
        org = self.organizations[
            bisect.bisect(self._org_weights, rng.random() * self._org_weights[-1])
        ]
        created = self.month_start + dt.timedelta(seconds=rng.uniform(0, self.days * 86400))
        started = created + dt.timedelta(seconds=rng.uniform(1, 90))
        total = rng.randint(6, 12)
        succeeded = rng.random() > 0.12
        steps = self._steps(total, started, succeeded)
        completed = steps[-1]["endedAt"]
        job_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        shots = self._screenshots(org, job_id, steps)
        client = rng.choice(org.clients)
        error_code = (
            None
            if succeeded
            else rng.choice(
                ["PORTAL_TIMEOUT", "LOGIN_FAILED", "MEMBER_NOT_FOUND", "SELECTOR_MISSING"]
            )
        )
        output = {
            "success": succeeded,
            "stats": {
                "totalSteps": total,
                "successfulSteps": sum(s["success"] for s in steps),
                "failedSteps": sum(not s["success"] for s in steps),
                "duration": int((completed - started).total_seconds() * 1000),
            },
            "stepResults": [
                {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in s.items()}
                for s in steps
            ],
            "screenshots": shots,
            "extractedData": {
                "payer": rng.choice(PAYERS)[0],
                "claimStatus": rng.choice(["PAID", "DENIED", "PENDING", "IN_REVIEW"]),
                "paidAmount": round(rng.uniform(12, 2400), 2),
                "checkNumber": "".join(rng.choices(string.digits, k=9)),
                "denialReason": None if rng.random() < 0.7 else _sentence(rng, 80),
            },
            "startedAt": started.isoformat(),
            "completedAt": completed.isoformat(),
            "processorVersion": "7.3.1",
        }
        patient_name = f"{rng.choice(['A.', 'J.', 'M.', 'R.', 'S.'])} " + rng.choice(
            ["Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Lopez", "Wilson"]
        )
        job = SyntheticJob(
            id=job_id,
            organization=org,
            workflow=rng.choice(org.workflows),
            client=client,
            claim_id=uuid.UUID(int=rng.getrandbits(128), version=4),
            patient_name=patient_name,
            patient_id="".join(rng.choices(string.ascii_uppercase + string.digits, k=11)),
            credentials=rng.sample(org.credentials, k=rng.randint(1, 3)),
            created_at=created,
            started_at=started,
            completed_at=completed,
            succeeded=succeeded,
            error_code=error_code,
            error_message=None if succeeded else _sentence(rng, rng.randint(60, 400)),
            total_steps=total,
            progress=sorted(rng.randint(0, total) for _ in range(12)),
            output=output,
            logs=self._logs(steps),
            rag=self._rag(started, total),
        )
        job.audit = self._audit(job)
        return job

    def _steps(self, total: int, start: dt.datetime, succeeded: bool) -> list[dict[str, Any]]:
        rng = self.rng
        steps = []
        clock = start
        failing = -1 if succeeded else rng.randrange(total)
        for index in range(total):
            took = int(rng.lognormvariate(7.3, 0.6))
            ended = clock + dt.timedelta(milliseconds=took)
            steps.append(
                {
                    "stepIndex": index,
                    "name": STEPS[index % len(STEPS)],
                    "success": index != failing,
                    "durationMs": took,
                    "startedAt": clock,
                    "endedAt": ended,
                    "selector": f"#main > div.claims > table tr:nth-child({rng.randint(1, 60)}) td",
                    "output": {
                        "text": _sentence(rng, rng.randint(400, 2600)),
                        "fields": {w: rng.randint(0, 9999) for w in rng.sample(WORDS, k=12)},
                    },
                    "observations": [_sentence(rng, rng.randint(60, 200)) for _ in range(4)],
                }
            )
            clock = ended
        return steps

    def _screenshots(
        self, org: SyntheticOrganization, job_id: uuid.UUID, steps: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rng = self.rng
        chosen = sorted(rng.sample(range(len(steps)), k=min(len(steps), rng.randint(2, 10))))
        return [
            {
                "stepIndex": i,
                "url": f"https://claimautoprod.blob.core.windows.net/screenshots/{org.id}/"
                f"{job_id}/step-{i:02d}-{rng.getrandbits(40):010x}.png",
                "width": 1920,
                "height": 1080,
                "capturedAt": steps[i]["endedAt"].isoformat(),
            }
            for i in chosen
        ]

    def _logs(self, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rng = self.rng
        lines = []
        for step in steps:
            count = max(1, round(rng.gauss(60 / len(steps), 2)))
            span = (step["endedAt"] - step["startedAt"]).total_seconds()
            for n in range(count):
                level = rng.choice(LEVELS) if step["success"] else rng.choice(["WARN", "ERROR"])
                lines.append(
                    {
                        "timestamp": step["startedAt"] + dt.timedelta(seconds=span * n / count),
                        "stepIndex": step["stepIndex"],
                        "stepName": step["name"],
                        "level": level,
                        "message": _sentence(rng, int(rng.triangular(60, 380, 140))),
                        "metadata": (
                            {
                                "selector": step["selector"],
                                "attempt": rng.randint(1, 3),
                                "elapsedMs": rng.randint(5, 4000),
                            }
                            if rng.random() < 0.5
                            else None
                        ),
                        "durationMs": rng.randint(1, 3000) if rng.random() < 0.4 else None,
                    }
                )
        return lines

    def _rag(self, at: dt.datetime, total_steps: int) -> dict[str, Any]:
        rng = self.rng
        picked: list[Rule] = []
        seen: set[int] = set()
        wanted = rng.randint(10, 50)
        while len(picked) < wanted:
            index = bisect.bisect(self._rule_weights, rng.random() * self._rule_weights[-1])
            if index not in seen:
                seen.add(index)
                picked.append(self.rules[index])
        scores = sorted((round(rng.uniform(0.35, 0.99), 4) for _ in picked), reverse=True)
        used = set(rng.sample(range(len(picked)), k=rng.randint(0, min(5, len(picked)))))
        rules = [
            {
                "ruleId": rule.rule_id,
                "ruleType": rule.rule_type,
                "condition": rule.condition,
                "action": rule.action,
                "retrievalScore": score,
                "wasUsed": i in used,
                "usedAtStepIndex": rng.randrange(total_steps) if i in used else None,
                "usedAtTimestamp": (at + dt.timedelta(seconds=rng.uniform(1, 60))).isoformat()
                if i in used
                else None,
                "usageReason": _sentence(rng, rng.randint(40, 200)) if i in used else None,
            }
            for i, (rule, score) in enumerate(zip(picked, scores, strict=True))
        ]
        payers = [
            {"payerName": name, "payerId": pid, "scenario": _sentence(rng, rng.randint(40, 160))}
            for name, pid in rng.sample(PAYERS, k=rng.randint(1, 3))
        ]
        modifiers = [
            {"code": code, "scenario": _sentence(rng, rng.randint(30, 120))}
            for code in rng.sample(MODIFIERS, k=rng.randint(0, 4))
        ]
        return {
            "retrievedAt": at.isoformat(),
            "ragRetrievalTimeMs": rng.randint(40, 900),
            "totalRulesRetrieved": len(rules),
            "totalRulesUsed": len(used),
            "averageRetrievalScore": round(sum(scores) / len(scores), 4),
            "payers": payers,
            "modifiers": modifiers,
            "rules": rules,
        }

    def _audit(self, job: SyntheticJob) -> list[dict[str, Any]]:
        rng = self.rng
        records = []
        for _ in range(rng.randint(2, 10)):
            at = job.started_at + dt.timedelta(seconds=rng.uniform(0, 3600))
            details: dict[str, Any] = {
                "request": {
                    "method": rng.choice(["GET", "POST"]),
                    "path": f"/api/v2/claims/{job.claim_id}/"
                    + rng.choice(["status", "documents", "eob", "eligibility"]),
                    "query": {"include": rng.sample(["lines", "notes", "payments", "history"], 2)},
                    "requestId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                },
                "fieldsAccessed": rng.sample(
                    [
                        "patientName",
                        "dateOfBirth",
                        "memberId",
                        "address",
                        "diagnosisCodes",
                        "procedureCodes",
                        "paidAmount",
                        "insurancePlan",
                        "phone",
                    ],
                    k=rng.randint(2, 7),
                ),
                "jobId": str(job.id),
                "workflow": job.workflow[1],
                "session": {
                    "sessionId": "".join(rng.choices(string.ascii_letters + string.digits, k=32)),
                    "mfa": rng.random() < 0.9,
                    "tenantRegion": rng.choice(["eastus2", "centralus", "westus3"]),
                },
                "note": _sentence(rng, int(rng.triangular(300, 2200, 900))),
            }
            records.append(
                {
                    "at": at,
                    "actor_id": rng.choice(job.organization.users),
                    "patient_ref": job.patient_id,
                    "claim_id": job.claim_id,
                    "job_id": job.id,
                    "action": rng.choice(ACTIONS),
                    "resource_type": rng.choice(RESOURCES),
                    "resource_id": str(job.claim_id),
                    "purpose": rng.choice(PURPOSES),
                    "source_ip": f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}."
                    f"{rng.randint(1, 254)}",
                    "user_agent": rng.choice(AGENTS),
                    "details": details,
                }
            )
        return records
