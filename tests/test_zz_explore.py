import json
import pytest
from sqlalchemy import text
from playground import plan as plans
from playground import sandbox as sandboxes

@pytest.mark.django_db(transaction=True)
def test_explore(engine, sandbox, run_recipe):
    print("ADMIN", sandboxes.admin_url())
    r = run_recipe(engine, "offset-pagination", "offset", page=3, size=7)
    for s in r.statements:
        print(s.kind, s.main, repr(s.sql[:60]), s.parameters, s.rowcount, s.duration_ms)
    print(r.query_count, r.db_ms, r.ok, r.error)
    for slug, v, kw in [("offset-pagination","offset",dict(page=1)),("offset-pagination","offset",dict(page=40)),
                        ("keyset-pagination","keyset",dict(page=1)),("keyset-pagination","keyset",dict(page=90)),
                        ("keyset-pagination","keyset",dict(page=90,index="none")),("keyset-pagination","keyset",dict(page=1,index="none"))]:
        r = run_recipe(engine, slug, v, size=20, **kw)
        s = plans.summarize(r.plan.json)
        print(slug, v, kw, s.rows_read, [(n.label, n.rows_read, n.exclusive_ms, n.inclusive_ms) for n in s.nodes])
    with engine.connect() as conn:
        for q in ["SELECT * FROM documents WHERE id = (SELECT max(id) FROM documents) - 5",
                  "WITH c AS MATERIALIZED (SELECT * FROM documents ORDER BY id LIMIT 500) SELECT count(*) FROM c WHERE id % 2 = 0",
                  "SELECT id, (SELECT count(*) FROM documents d2 WHERE d2.owner_id = d.owner_id) FROM documents d WHERE id < 50",
                  "SELECT count(*) FROM documents WHERE id IN (SELECT id FROM documents WHERE owner_id < 100)"]:
            pj = conn.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + q)).scalar()
            s = plans.summarize(pj)
            print(q[:50], "root", s.nodes[0].inclusive_ms, "sum", sum(n.exclusive_ms for n in s.nodes), "exec", s.execution_ms)
            print(json.dumps(pj)[:1500])
