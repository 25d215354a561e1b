"""Search and sort: the filter parser (whitelist, types, injection attempts) and GET /jobs?filter=&sort=
on SQLite and PostgreSQL."""
import pytest

from services.store import db, jobs as job_store, search
from tests.services.conftest import run_job


def finish(job_id, **metrics):
    with db.session_scope() as session:
        token = run_job(session, job_id, [1.0])
        job_store.finish_job(session, job_id, token, "succeeded", [], steps_done=1, params_json=None,
                             metrics={"final_loss": 0.5, "accuracy": None, "val_loss": None,
                                      "val_accuracy": None, "steps_done": 1, **metrics})


@pytest.mark.parametrize("text, expected", [
    ("optimizer.lr>=0.05", [("optimizer.lr", ">=", 0.05)]),
    ("optimizer.lr >= 5e-2 AND metrics.val_accuracy>0.9", [("optimizer.lr", ">=", 0.05),
                                                          ("metrics.val_accuracy", ">", 0.9)]),
    ("data.kind = moons and loss!='hinge'", [("data.kind", "=", "moons"), ("loss", "!=", "hinge")]),
    ('steps==100 and seed<3 and l2<=0', [("steps", "==", 100.0), ("seed", "<", 3.0), ("l2", "<=", 0.0)]),
    ("data.kind=\"a b' OR 1=1\"", [("data.kind", "=", "a b' OR 1=1")]),  # a value is just a value
])
def test_the_parser_reads_typed_conditions(text, expected):
    assert [(c.field, c.op, c.value) for c in search.parse_filter(text)] == expected


@pytest.mark.parametrize("text, token", [
    ("optimizer.lrr>1", "optimizer.lrr"),
    ("model.layers=4", "model.layers"),  # lists are not filterable
    ("optimizer.lr>abc", "abc"),
    ("optimizer.lr>nan", "nan"),
    ("optimizer.lr>inf", "inf"),
    ("data.kind>moons", ">"),
    ("optimizer.lr 0.1", "0.1"),
    ("optimizer.lr>=0.1 or 1=1", "or"),
    ("optimizer.lr>=0.1 and", "and"),
    ("optimizer.lr>=0.1; DROP TABLE jobs", ";"),
    ("' OR 1=1 --", "unknown field \"'\""),
    ("spec->>'lr' > 0", "unknown field 'spec-'"),
    ("optimizer.lr>(SELECT 1)", "(SELECT"),
    ("metrics.val_accuracy>0.9 and owner=bob", "owner"),
    ("", "field"),
])
def test_a_bad_filter_names_the_token(text, token):
    with pytest.raises(search.FilterError) as error:
        search.parse_filter(text)
    assert token in str(error.value)


def test_the_whitelist_covers_the_specs_numbers_and_choices_and_the_metrics():
    assert {"optimizer.lr": "number", "data.kind": "string", "data.noise": "number", "loss": "string",
            "seed": "number", "metrics.val_accuracy": "number"}.items() <= search.FIELDS.items()
    assert not {"model.layers", "data.xs", "record.graph_svg", "owner", "spec"} & set(search.FIELDS)


@pytest.fixture
def runs(client):
    """Six jobs: lr 0.01..0.2, moons or xor, val_accuracy (one has none, one is still queued)."""
    made = {}
    for name, kind, lr, val in [("a", "moons", 0.01, 0.80), ("b", "moons", 0.05, 0.95), ("c", "xor", 0.1, 0.99),
                                ("d", "xor", 0.2, 0.91), ("e", "moons", 0.1, None), ("f", "moons", 0.3, "queued")]:
        spec = {"data": {"kind": kind}, "model": {"layers": [2, 1]}, "loss": "hinge", "optimizer": {"lr": lr}}
        response = client.post("/jobs", json={"spec": spec, "name": name})
        assert response.status_code == 201, response.text
        made[name] = response.json()["id"]
        if val != "queued":
            finish(made[name], val_accuracy=val, accuracy=val)
    return made


def names(client, query):
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 200, response.text
    return [job["name"] for job in response.json()["items"]]


def test_filters_on_spec_fields_and_metrics(client, runs):
    assert sorted(names(client, "filter=optimizer.lr>=0.05")) == ["b", "c", "d", "e", "f"]
    assert sorted(names(client, "filter=optimizer.lr>=0.05 and metrics.val_accuracy>0.9")) == ["b", "c", "d"]
    assert sorted(names(client, "filter=data.kind=xor")) == ["c", "d"]
    assert sorted(names(client, "filter=data.kind!=xor and optimizer.lr<0.1")) == ["a", "b"]
    assert sorted(names(client, "filter=metrics.val_accuracy<=0.8 and data.kind='moons'")) == ["a"]
    assert client.get("/jobs", params={"filter": "status=queued"}).status_code == 422  # ?status= is for that


def test_injection_attempts_change_nothing(client, runs):
    assert names(client, "filter=data.kind=\"moons' OR '1'='1\"") == []
    assert names(client, "filter=data.kind='x\\\" OR 1=1 --'") == []
    for bad in ["optimizer.lr>0 OR 1=1", "optimizer.lr>0; DELETE FROM jobs", "optimizer.lr>0)) OR ((1=1",
                "jobs.owner=bob", "optimizer.lr>0 and 1=1"]:
        response = client.get("/jobs", params={"filter": bad})
        assert response.status_code == 422, bad
        assert response.json()["detail"][0]["loc"] == ["query", "filter"]
    for bad in ["created_at; DROP TABLE jobs", "spec", "owner", "metrics.nope", "optimizer.lr desc"]:
        response = client.get("/jobs", params={"sort": bad})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "sort"], bad
    assert len(names(client, "limit=200")) == 6


def test_a_bad_filter_is_422_naming_the_token(client):
    response = client.get("/jobs", params={"filter": "optimizer.lr>=0.05 and metrics.val_acc>0.9"})
    assert response.status_code == 422
    assert "metrics.val_acc" in response.json()["detail"][0]["msg"]


def test_sorts_by_metrics_and_spec_fields_with_the_missing_last(client, runs):
    assert names(client, "sort=metrics.val_accuracy&order=desc") == ["c", "b", "d", "a", "f", "e"]
    assert names(client, "sort=metrics.val_accuracy&order=asc") == ["a", "d", "b", "c", "f", "e"]
    assert names(client, "sort=optimizer.lr&order=asc") == ["a", "b", "e", "c", "d", "f"]  # ties: newest first
    assert names(client, "sort=name&order=asc") == list("abcdef")
    assert names(client, "sort=created_at&order=asc") == list("abcdef")
    assert names(client, "sort=data.kind&order=desc&filter=optimizer.lr>0.05") == ["d", "c", "f", "e"]


@pytest.mark.parametrize("sort, order", [("metrics.val_accuracy", "desc"), ("optimizer.lr", "asc"),
                                         ("name", "desc"), ("created_at", "asc"), ("created_at", "desc"),
                                         ("metrics.final_loss", "asc")])
def test_sorted_pages_cover_every_job_once(client, runs, sort, order):
    whole = names(client, f"sort={sort}&order={order}")
    pages, cursor = [], None
    while True:
        params = {"sort": sort, "order": order, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get("/jobs", params=params).json()
        pages += [job["name"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == whole and sorted(pages) == list("abcdef")


def test_a_cursor_only_continues_its_own_sort(client, runs):
    cursor = client.get("/jobs", params={"sort": "optimizer.lr", "limit": 2}).json()["next_cursor"]
    for params in [{"sort": "name"}, {"sort": "optimizer.lr", "order": "asc"}, {}]:
        response = client.get("/jobs", params={**params, "cursor": cursor})
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "cursor"], params


def test_a_forged_cursor_is_422_not_a_crash(client, runs):
    import base64
    import json
    real = client.get("/jobs", params={"sort": "optimizer.lr", "limit": 2}).json()["next_cursor"]
    created_at, job_id, *_ = json.loads(base64.urlsafe_b64decode(real))
    for sort, value in [("optimizer.lr", 10**400), ("optimizer.lr", "0.1"), ("optimizer.lr", True),
                        ("optimizer.lr", [1]), ("name", 5), ("created_at", 5), ("created_at", "yesterday"),
                        ("data.kind", {"a": 1})]:
        forged = base64.urlsafe_b64encode(json.dumps([created_at, job_id, sort, True, value]).encode()).decode()
        response = client.get("/jobs", params={"sort": sort, "cursor": forged})
        assert response.status_code == 422, (sort, value, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("query, name", [("experiment=a&experiment=b", "experiment"), ("limit=5&limit=6", "limit"),
                                         ("sort=-created_at&sort=created_at", "sort")])
def test_a_one_value_parameter_given_twice_is_422_naming_it(client, query, name):
    # The framework would keep the last value silently: ?experiment=a&experiment=b listed b's jobs.
    response = client.get(f"/jobs?{query}")
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["query", name], "type": "repeated_value",
                                           "msg": "given more than once; this parameter takes one value"}]


def test_every_operation_refuses_a_one_value_parameter_given_twice(client):
    """Each router carries the check (deps.API_DEPENDENCIES; services/api/app.py adds the routers' routes to
    the app as they are, not through an include that would add it): one without it would keep the last value."""
    from services.api.deps import takes_a_list
    some_id = "00000000-0000-4000-8000-000000000000"
    checked = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            parameters = operation.get("parameters", [])
            single = [p["name"] for p in parameters if p["in"] == "query" and not takes_a_list(p)]
            if not single:
                continue
            url = path.format(**{p["name"]: some_id for p in parameters if p["in"] == "path"})
            response = client.request(method.upper(), f"{url}?{single[0]}=1&{single[0]}=2",
                                      json={} if method in ("post", "put", "patch") else None)
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["detail"][0]["type"] == "repeated_value", (method, path, response.text)
            checked.append(path.split("/")[1])
    assert {"jobs", "sweeps", "compare"} <= set(checked), checked


def test_list_parameters_may_repeat(client, runs):
    assert client.get("/jobs?tag=a&tag=b").status_code == 200
    assert "repeated_value" not in client.get("/compare?ids=x&ids=y").text  # a 404 for unknown ids, not this
