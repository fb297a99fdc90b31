"""Property tests: the queue's state machine and the spec validator under arbitrary input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import ValidationError

from app.config import Settings
from app.spec import JobSpec, SpecError
from app.store import jobs
from app.store.db import get_engine, init_db
from app.store.models import utcnow

LEGAL = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "queued"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
}


class QueueMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.claims: list[jobs.Claim] = []
        self.seen: dict[int, tuple[str, int]] = {}

    @initialize()
    def fresh_database(self):
        import tempfile

        self.engine = get_engine(f"sqlite:///{tempfile.mkdtemp()}/q.db")
        init_db(self.engine)

    @rule(n=st.integers(1, 3), max_attempts=st.integers(1, 3))
    def submit(self, n, max_attempts):
        jobs.submit_many(self.engine, [JobSpec(dataset="digits")] * n, owner="p", max_attempts=max_attempts)

    @rule()
    def claim(self):
        c = jobs.claim(self.engine, "w", devices=("auto",), lease_seconds=60, run_device="cpu")
        if c:
            self.claims.append(c)

    @precondition(lambda self: self.claims)
    @rule(i=st.integers(0, 50), outcome=st.sampled_from(["succeeded", "failed", "cancelled"]))
    def finish(self, i, outcome):
        c = self.claims[i % len(self.claims)]
        jobs.finish(self.engine, c.job_id, c.token, outcome)

    @precondition(lambda self: self.claims)
    @rule(i=st.integers(0, 50))
    def heartbeat(self, i):
        c = self.claims[i % len(self.claims)]
        jobs.heartbeat(self.engine, c.job_id, c.token, step=1, steps_per_second=None, lease_seconds=60)

    @precondition(lambda self: self.claims)
    @rule(i=st.integers(0, 50))
    def release(self, i):
        c = self.claims[i % len(self.claims)]
        jobs.release(self.engine, c.job_id, c.token, step=1)

    @precondition(lambda self: self.claims)
    @rule(i=st.integers(0, 50))
    def retry_or_fail(self, i):
        c = self.claims[i % len(self.claims)]
        jobs.retry_or_fail(self.engine, c.job_id, c.token, error="boom", backoff_seconds=0)

    @rule()
    def leases_expire(self):
        jobs.requeue_expired(self.engine, now=utcnow() + timedelta(hours=1))

    @rule(job_id=st.integers(1, 12))
    def cancel(self, job_id):
        jobs.cancel(self.engine, job_id)

    @invariant()
    def consistent(self):
        if not hasattr(self, "engine"):
            return
        rows, _ = jobs.list_jobs(self.engine, limit=500)
        for r in rows:
            status, attempts = r.status, r.attempts
            # one live lease at most, and only while running
            assert (r.lease_token is not None) == (status == "running"), r
            if status == "running":
                assert attempts >= 1
            before = self.seen.get(r.id)
            if before:
                assert attempts >= before[1], "attempts only increase"
                if before[0] != status:
                    assert (before[0], status) in LEGAL, (before[0], status)
            if status in jobs.TERMINAL:
                assert r.finished_at is not None
            self.seen[r.id] = (status, attempts)
        live_tokens = [r.lease_token for r in rows if r.lease_token]
        assert len(live_tokens) == len(set(live_tokens))


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=30, stateful_step_count=25, deadline=None, suppress_health_check=list(HealthCheck))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
spec_keys = st.sampled_from([*JobSpec.model_fields, "stepz", "lossy"])


@given(st.dictionaries(spec_keys, json_values, max_size=8))
@settings(max_examples=300, deadline=None)
def test_spec_validator_accepts_or_names_a_field(body):
    try:
        spec = JobSpec.model_validate(body)
    except ValidationError as e:
        for err in e.errors():
            cause = (err.get("ctx") or {}).get("error")
            assert err["loc"] or isinstance(cause, SpecError)
        return
    assert JobSpec.model_validate(spec.model_dump(mode="json")) == spec  # what is stored reads back the same


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from fastapi.testclient import TestClient

    from app.main import create_app

    with TestClient(create_app(Settings(home=tmp_path_factory.mktemp("h"), demo=False))) as c:
        yield c


@given(st.dictionaries(spec_keys, json_values, max_size=6))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_never_answers_5xx_to_a_spec(api, body):
    r = api.post("/api/jobs", content=json.dumps(body), headers={"Content-Type": "application/json"})  # NaN included
    assert r.status_code in (201, 400, 422), r.text
    if r.status_code == 422:
        assert all(d["field"] and d["reason"] for d in r.json()["detail"])
