"""Property-based tests of the whole API against its own OpenAPI schema (in-process ASGI):
no request may cause a 5xx, and every response must match the schema."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services import queue
from services.api.routes import health
from tests.services.conftest import finish_job, start_job, submit

EXAMPLES_PER_OPERATION = 300
# JSON Schema cannot say "model.inputs must equal the data's width" or "within MAX_STEPS", so a
# schema-valid spec may rightly get its (documented) 422: that one check does not apply here.
NOT_APPLICABLE = [schemathesis.checks.positive_data_acceptance]
known_job_ids = []  # filled by the fixture (schemathesis copies the schema object, so not there)


@pytest.fixture
def api_schema(make_client, monkeypatch, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("one database is enough here; the API tests cover both")
    monkeypatch.setattr(health.queue, "check_broker", lambda: None)
    client = make_client(MAX_ACTIVE_JOBS_PER_OWNER=1_000_000)
    # A few real jobs in every state, so generated requests do not only meet 404s.
    done, running = submit(client), submit(client)
    finish_job(done)
    start_job(running)
    cancelled = submit(client)
    client.post(f"/jobs/{cancelled}/cancel")
    known_job_ids[:] = [done, running, cancelled, submit(client)]
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None,
          suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if "job_id" in (case.path_parameters or {}) and not negative:
        known = known_job_ids
        # Half of the valid ids are replaced by real ones (chosen by the generated id, so it replays).
        pick = int(str(case.path_parameters["job_id"]).encode().hex(), 16) % (2 * len(known))
        if pick < len(known):
            case.path_parameters["job_id"] = known[pick]
    case.call_and_validate(excluded_checks=NOT_APPLICABLE)
