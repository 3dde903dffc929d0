"""Questions and challenges on real runs: every answer comes from the run, every challenge can be won
and lost. The tables below name, for each one, the runs that show it; a new question or challenge
without an entry fails `test_every_question_and_challenge_has_examples`."""

from __future__ import annotations

from typing import Any

import pytest

import recipes
from playground.checks import recipe_learning
from playground.running import runner
from recipes.learning import Challenge, Check, Question, problems
from recipes.measures import FIGURES, figure, fill
from recipes.results import RunResult

pytestmark = pytest.mark.django_db(transaction=True)

Run = tuple[str | None, dict[str, Any]]
"""(variant, parameters) of one run; None runs the question's own variant."""

QUESTIONS: dict[str, tuple[Run, Run]] = {
    "timestamp-mixin/stamped": (("orm-update", {"rows": 3}), ("orm-update", {"rows": 7})),
    "uuid-keys/index-size": (("uuid4", {"rows": 2000}), ("uuid4", {"rows": 20_000})),
    "offset-pagination/rows-read": (("offset", {"page": 3}), ("offset", {"page": 30})),
    "offset-pagination/scan": (("offset", {"page": 3}), ("offset-unordered", {"page": 3})),
    "keyset-pagination/rows-read": (("keyset", {"page": 30}), ("keyset", {"page": 30, "index": "none"})),
    "keyset-pagination/sort": (("keyset", {"page": 30}), ("keyset", {"page": 30, "index": "none"})),
    "eager-loading/lazy-queries": ((None, {"authors": 20}), (None, {"authors": 80})),
    "eager-loading/joined-rows": ((None, {"authors": 20}), (None, {"authors": 20, "books_per_author": 3})),
    "exists-count/wire-rows": ((None, {"match": 10}), (None, {"match": 30})),
    "upsert/race-errors": ((None, {"workers": 3}), (None, {"workers": 6})),
    "upsert/conflict-target": ((None, {}), (None, {"conflict_target": "name"})),
    "soft-delete/dead-listed": ((None, {"rows": 2000}), (None, {"rows": 10_000})),
    "unit-of-work/steps-kept": (("commit-each-step", {}), ("commit-each-step", {"fail_at_step": "2"})),
    "bulk-insert/batches": (
        (None, {"rows": 1000, "batch_size": 500}),
        (None, {"rows": 1000, "batch_size": 100}),
    ),
    "full-text-search/index-used": (("tsquery", {}), ("tsquery", {"index": "none"})),
    "full-text-search/matches": (("tsquery", {"rows": 1000}), ("tsquery", {"rows": 3000})),
    "connection-pool/opened": ((None, {}), (None, {"max_overflow": 2})),
    "connection-pool/pre-ping": ((None, {}), (None, {"pool_pre_ping": True})),
    "indexes/scan": (
        ("owner-created", {"rows": 5000}),
        ("owner-created", {"rows": 5000, "query": "live-newest"}),
    ),
    "indexes/rows-read": (("none", {"rows": 2000}), ("none", {"rows": 5000})),
    "prepared-statements/first-generic": ((None, {"calls": 15}), (None, {"calls": 8})),
}
CHALLENGES: dict[str, tuple[Run, Run]] = {
    "timestamp-mixin/no-stale-rows": (("orm-update", {}), ("raw-update", {})),
    "uuid-keys/full-pages": (("uuid7", {"rows": 20_000}), ("uuid4", {"rows": 20_000})),
    "offset-pagination/page-50-budget": (("offset", {"size": 20}), ("offset", {"size": 40})),
    "keyset-pagination/page-5000": (
        ("keyset", {"rows": 110_000}),
        ("keyset", {"rows": 110_000, "index": "none"}),
    ),
    "eager-loading/two-queries": (("selectinload", {}), ("lazy", {})),
    "exists-count/stop-early": (("exists", {}), ("count", {})),
    "prepared-statements/no-generic-plan": (("force-custom-plan", {}), ("auto-prepare", {})),
    "upsert/race-no-errors": (("on-conflict-race", {}), ("select-then-insert", {})),
    "soft-delete/sign-up-again": (("partial-unique-index", {}), ("re-register", {})),
    "soft-delete/no-dead-listed": (("list-live", {}), ("list-forgot-filter", {})),
    "unit-of-work/all-or-nothing": (("one-transaction", {}), ("commit-each-step", {})),
    "bulk-insert/five-times-faster": (("copy", {}), ("add-all", {})),
    "full-text-search/no-seq-scan": (("tsquery", {}), ("ilike", {})),
    "connection-pool/no-timeouts": (("burst", {"max_overflow": 4}), ("burst", {})),
    "indexes/lower-email": (("lower-email", {"rows": 5000}), ("email", {"rows": 5000})),
}
SMALL_ROWS = {
    "keyset-pagination": 2000,
    "offset-pagination": 2000,
    "exists-count": 2000,
    "soft-delete": 2000,
    "full-text-search": 2000,
    "indexes": 2000,
}
"""Table sizes for runs that do not name one: small, and big enough for the plans to differ."""


def everything(kind: str) -> list[str]:
    return [f"{r.slug}/{slug}" for r in recipes.REGISTRY.values() for slug in getattr(r, kind)]


def run(engine, slug: str, variant: str, params: dict[str, Any]) -> RunResult:
    recipe = recipes.get(slug)
    if slug in SMALL_ROWS:
        params = {"rows": SMALL_ROWS[slug], **params}
    chosen = recipe.validate({**params, "variant": variant})
    return runner.run(recipe=recipe, variant=chosen.variant, params=dict(chosen.params), engine=engine)


# --- declarations ----------------------------------------------------------------------------
def test_every_recipe_has_at_least_two_questions_or_challenges():
    thin = [r.slug for r in recipes.REGISTRY.values() if len(r.questions) + len(r.challenges) < 2]
    assert not thin


def test_every_question_and_challenge_has_examples():
    assert set(everything("questions")) == set(QUESTIONS)
    assert set(everything("challenges")) == set(CHALLENGES)


def test_declarations_are_sound():
    assert {r.slug: problems(r) for r in recipes.REGISTRY.values() if problems(r)} == {}


def test_a_broken_declaration_is_reported():
    recipe = recipes.get("eager-loading")
    broken = Challenge(
        "x", "goal", checks=(Check("querys", at_most=1), Check("queries", at_most=1, at_least=0))
    )
    q = Question("q", "How many {widgets}?", answer="queries", variant="eager")
    original = dict(recipe.questions), dict(recipe.challenges)
    recipe.learn(broken, q)
    try:
        found = " | ".join(problems(recipe))
        reported = recipe_learning()
    finally:
        recipe.questions, recipe.challenges = original
    assert "unknown figure 'querys'" in found
    assert "set exactly one" in found
    assert "unknown variant 'eager'" in found
    assert "not a parameter" in found
    assert {e.id for e in reported} == {"playground.L001"} and len(reported) == 4
    assert all(e.obj == "eager-loading" for e in reported)


def test_a_duplicate_slug_is_refused():
    with pytest.raises(ValueError, match="duplicate"):
        recipes.get("upsert").learn(Question("race-errors", "?", answer="queries"))


def test_fill_shows_a_value_its_format_does_not_fit():
    assert fill("{rows:,} rows", {"rows": 12000}) == "12,000 rows"
    assert fill("{rows:,} rows", {"rows": "abc"}) == "abc rows"
    assert fill("{nope} stays", {}) == "{nope} stays"


def test_figures_are_named_and_metrics_are_read_by_name():
    assert {"queries", "rows_read", "buffers", "errors", "nodes", "rows_returned"} <= set(FIGURES)
    assert figure("metric:insert_ms").label == "insert ms"
    with pytest.raises(ValueError, match="unknown figure"):
        figure("speed")


def test_a_guess_is_read_as_a_number_or_a_choice():
    q = recipes.get("eager-loading").questions["lazy-queries"]
    assert q.read_guess("1,200") == 1200
    assert q.read_guess(" 2.5 ") == 2.5
    for bad in ("", "many", "nan", "inf", True):
        with pytest.raises(ValueError, match="number"):
            q.read_guess(bad)
    choice = recipes.get("keyset-pagination").questions["sort"]
    assert choice.read_guess("no") == "no"
    with pytest.raises(ValueError, match="Pick one of: yes, no"):
        choice.read_guess("maybe")


# --- on real runs ----------------------------------------------------------------------------
@pytest.mark.parametrize("key", list(QUESTIONS))
def test_a_question_is_answered_by_the_run(engine, key):
    slug, name = key.split("/")
    question = recipes.get(slug).questions[name]
    (va, pa), (vb, pb) = QUESTIONS[key]
    a = run(engine, slug, question.variant or va, pa)
    b = run(engine, slug, question.variant or vb, pb)
    truth_a, truth_b = question.truth(a), question.truth(b)
    assert truth_a is not None and truth_b is not None, (a.error, b.error)
    assert truth_a != truth_b, f"changing {pa} → {pb} left the answer at {truth_a}"

    right = question.check(a, truth_a)
    assert right.right and right.truth == truth_a and right.why
    wrong = question.check(a, truth_b)
    assert wrong.truth == truth_a
    if question.choices:
        assert not wrong.right
    elif abs(truth_b - truth_a) > question.close * abs(truth_a):
        assert not wrong.right
        assert wrong.off_by.startswith("off by")
    assert "{" not in right.asked, right.asked


@pytest.mark.parametrize("key", list(CHALLENGES))
def test_a_challenge_is_won_by_one_run_and_lost_by_another(engine, key):
    slug, name = key.split("/")
    challenge = recipes.get(slug).challenges[name]
    outcomes = []
    for variant, params in CHALLENGES[key]:
        params = {**params, **challenge.params}
        baselines = {v: run(engine, slug, v, params) for v in challenge.baselines()}
        result = run(engine, slug, variant, params)
        outcomes.append(challenge.evaluate(result, {**baselines, variant: result}))
    won, lost = outcomes
    assert won.passed, [(c.check, c.detail) for c in won.checks]
    assert not lost.passed, [(c.check, c.detail) for c in lost.checks]
    failed = [c for c in lost.checks if not c.passed]
    assert all(c.detail for c in failed)
    assert "{" not in won.goal


def test_a_check_says_by_how_much(engine):
    lazy = run(engine, "eager-loading", "lazy", {"authors": 30})
    over = Check("queries", at_most=2).evaluate(lazy, {})
    assert not over.passed and over.actual == 31
    assert over.detail == "the run: 31, 29 over"
    spare = Check("queries", at_most=40).evaluate(lazy, {})
    assert spare.passed and spare.detail == "the run: 31, 9 to spare"
    from_param = Check("metric:parents_loaded", at_least="authors").evaluate(lazy, {})
    assert from_param.passed and from_param.check == "parents loaded ≥ 30"
    nodes = Check("nodes", excludes="Seq Scan").evaluate(lazy, {})
    assert not nodes.passed and "Seq Scan" in nodes.detail


def test_a_time_ratio_compares_with_the_other_variant(engine):
    slow = run(engine, "eager-loading", "lazy", {"authors": 200})
    fast = run(engine, "eager-loading", "selectinload", {"authors": 200})
    check = Check("elapsed_ms", faster_than="lazy", times=2)
    result = check.evaluate(fast, {"lazy": slow})
    ratio = slow.elapsed_ms / fast.elapsed_ms  # wall times: which side of ×2 depends on the machine
    assert result.passed == (ratio >= 2), result.detail
    assert result.actual == pytest.approx(ratio, rel=0.01)
    assert "against lazy's" in result.detail
    missing = check.evaluate(fast, {})
    assert not missing.passed and "lazy has no" in missing.detail
