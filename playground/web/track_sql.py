"""A track step whose challenge is answered with SQL: the scratchpad's editor on the step's page.

The step names a recipe for its data (its setup seeds the sandbox with the step's parameters);
the person writes the query, and the run is checked on its own figures like any challenge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest

from playground.running import scratch
from playground.web.learn import attempt_json
from playground.web.respond import Refusal
from playground.web.sql import statement_results
from recipes.learning import Challenge
from recipes.tracks import Step


def asks_for_sql(step: Step) -> bool:
    return isinstance(step.teaching, Challenge) and step.teaching.asks_for_sql


def read_sql(data: Mapping[str, Any]) -> str:
    """The SQL of a form or of a JSON body (`{"sql": "..."}`)."""
    sql = data.get("sql")
    if not isinstance(sql, str):
        raise Refusal(400, errors={"sql": ['expected the SQL to run as "sql"']})
    return sql


def attempt(request: HttpRequest, step: Step, data: Mapping[str, Any]) -> dict[str, Any]:
    """Run the posted SQL on the step's data and check it: what `tracks.attempt_step` returns."""
    assert isinstance(step.teaching, Challenge)
    sql = read_sql(data)
    tried = scratch.attempt_sql(request.session, step.recipe, step.teaching, step.params, sql)
    return {
        "chosen": None,
        "result": tried.result,
        "verdict": tried.verdict,
        "json": attempt_json(tried),
        "sql": sql,
    }


def editor(request: HttpRequest, step: Step, extra: Mapping[str, Any]) -> dict[str, Any]:
    """What the step's page needs for the editor: the text (the challenge's, until one was
    posted), the sandbox's tables, and each statement's result once it ran."""
    assert isinstance(step.teaching, Challenge)
    result = extra.get("result")
    return {
        "sql_step": True,
        "sql": extra.get("sql", step.teaching.sql),
        "tables": lambda: scratch.tables(request.session),
        "statements": statement_results(result) if result is not None else [],
    }
