"""The recipe contract: the real registry keeps it, and each system check fires on a recipe that breaks it."""

from __future__ import annotations

import html as html_module
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
from django.core.management import call_command
from sqlalchemy import orm, select, text

import recipes
from playground.checks import recipe_contract, recipe_errors
from playground.running import runner
from recipes import contract
from recipes.base import Param, Recipe, Rows
from recipes.datasets import Author

MODULE = "recipes.reading.broken"
"""Where the broken recipes below pretend to live (the section check reads the module name)."""


def broken(**overrides) -> Recipe:
    fields = {
        "slug": "broken",
        "title": "Broken",
        "section": "Reading",
        "summary": "A recipe built to break one rule at a time.",
        "params": (),
        "docs": (("SQLAlchemy", "https://docs.sqlalchemy.org/"),),
    }
    return Recipe(**{**fields, **overrides})


def ids(recipe: Recipe, module: str = MODULE) -> list[str]:
    return [error.id for error in recipe_errors(recipe, module)]


def fine(recipe: Recipe) -> Recipe:
    """Add a variant that keeps every rule, so a test sees only the problem it made."""

    @recipe.variant
    def count_authors(run, p):
        """count(*) of authors"""
        with run.session() as session:
            return Rows(("n",), [(session.scalar(run.main(select(Author.id).limit(1))),)])

    return recipe


def load(run, p, loader):
    """A shared helper a pure delegation hands everything to."""
    with run.session() as session:
        return Rows.of(session.scalars(run.main(select(Author).options(loader(Author.books)))), "name")


def shown_load(run, p, stmt):
    """The display part only: the variant built the statement itself."""
    with run.session() as session:
        return Rows.of(session.scalars(run.main(stmt)), "name")


# --- the real registry --------------------------------------------------------------------------
def test_the_registered_recipes_keep_the_contract():
    assert contract.problems() == []
    assert recipe_contract() == []


def test_manage_py_check_passes():
    call_command("check")  # raises SystemCheckError on any error


VARIANTS = [(r, v) for r in recipes.REGISTRY.values() for v in r.variant_list]


@pytest.mark.parametrize(("recipe", "variant"), VARIANTS, ids=[f"{r.slug}:{v.slug}" for r, v in VARIANTS])
def test_every_variant_shows_the_sqlalchemy_it_is_about(recipe, variant):
    # Its own body, not only the helpers shown under it: a one-line delegation would show nothing.
    assert contract.sqlalchemy_calls(variant.func), variant.source
    shown = {f.__name__ for f in recipe.helpers}
    reached = {f.__name__ for f in contract.reachable(variant.func)[1:]}
    assert reached <= shown, f"not shown on the page: {reached - shown}"
    assert any(name in variant.source + "".join(recipe.helper_sources) for name in ("run.main(", ".main"))


@pytest.mark.django_db
def test_every_registered_module_file_is_on_the_shelf_and_in_the_api(client):
    # The shelf, /api/recipes and the every-variant test all read recipes.REGISTRY, built from MODULES.
    listed = {name.rsplit(".", 1)[1] for name in recipes.MODULES}
    on_disk = {
        path.stem
        for path in contract.RECIPES_ROOT.glob("*/*.py")
        if path.parent.name not in ("datasets", "tracks")
    } - {"__init__"}
    assert on_disk == listed
    api = client.get("/api/recipes").json()["recipes"]
    assert [r["slug"] for r in api] == list(recipes.REGISTRY)
    shelf = client.get("/").content.decode()
    for slug in recipes.REGISTRY:
        assert f'href="/recipes/{slug}/"' in shelf, slug


@pytest.mark.django_db
def test_the_page_shows_the_statement_and_the_helpers_that_build_it(client):
    def text_of(url: str) -> str:  # the source blocks are syntax-highlighted: drop the tags
        return html_module.unescape(re.sub(r"<[^>]+>", "", client.get(url).content.decode()))

    assert "select(Author).options(books)" in text_of("/recipes/eager-loading/?variant=selectinload")
    assert "def the_query(p):" in text_of("/recipes/indexes/")  # reached by every variant, so shown


@pytest.mark.django_db
def test_api_says_which_variants_fail_on_purpose(client):
    api = {r["slug"]: r for r in client.get("/api/recipes").json()["recipes"]}
    variants = {v["slug"]: v for v in api["eager-loading"]["variants"]}
    assert variants["raiseload"]["fails_on_purpose"] is True
    assert variants["raiseload"]["fails_because"]
    assert variants["selectinload"]["fails_on_purpose"] is False
    assert variants["selectinload"]["fails_because"] is None
    assert {"slug", "label", "description"} <= set(variants["lazy"])  # the existing fields stay


# --- each check on a recipe that breaks it -------------------------------------------------------
def test_e001_a_module_missing_from_the_registry(tmp_path):
    (tmp_path / "reading").mkdir()
    (tmp_path / "reading" / "__init__.py").write_text("")
    (tmp_path / "reading" / "listed.py").write_text('"""Listed."""\n')
    (tmp_path / "reading" / "dropped_in.py").write_text('"""Forgotten."""\n')
    found = contract.unregistered_modules(["recipes.reading.listed"], root=tmp_path)
    assert [(p.code, p.obj) for p in found] == [("E001", "recipes.reading.dropped_in")]


def test_e002_section_and_folder_disagree():
    recipe = fine(broken(section="Writing"))
    assert ids(recipe, "recipes.reading.broken") == ["playground.E002"]
    assert ids(recipe, "recipes.writing.broken") == []


def test_e003_a_variant_without_a_docstring():
    recipe = fine(broken())

    @recipe.variant
    def unlabelled(run, p):
        with run.session() as session:
            session.execute(run.main(select(Author.id)))

    assert ids(recipe) == ["playground.E003"]


@pytest.mark.parametrize(
    "param",
    [
        Param("rows", "int", 0, min=1, max=10),
        Param("rows", "int", 11, min=1, max=10),
        Param("rows", "int", 5, min=10, max=1),
        Param("rows", "int", "5", min=1, max=10),
        Param("ratio", "float", True, min=0, max=1),
        Param("mode", "choice", "fast", choices=("slow", "medium")),
        Param("on", "bool", "yes"),
        Param("q", "str", "x" * 11, max_length=10),
    ],
    ids=[
        "below-min",
        "above-max",
        "min-above-max",
        "int-as-str",
        "bool-as-float",
        "not-a-choice",
        "bool",
        "long",
    ],
)
def test_e004_a_default_the_form_would_refuse(param):
    assert ids(fine(broken(params=(param,)))) == ["playground.E004"]


@pytest.mark.parametrize(
    "param",
    [
        Param("mode", "choice", "a", choices=("a", "b"), sweepable=True),
        Param("rows", "int", 5, min=1, sweepable=True),
    ],
    ids=["choice", "no-max"],
)
def test_e005_a_sweepable_parameter_that_is_not_a_bounded_number(param):
    assert ids(fine(broken(params=(param,)))) == ["playground.E005"]


def test_e006_a_variant_that_marks_no_main_statement_unless_it_says_so():
    recipe = fine(broken())

    @recipe.variant
    def unmarked(run, p):
        """Sends a query nobody will EXPLAIN"""
        with run.session() as session:
            session.execute(select(Author.id))

    assert ids(recipe) == ["playground.E006"]
    declared = fine(broken())
    declared.variant(unmarked, slug="declared", main=False)
    assert ids(declared) == []


def test_e006_run_main_through_a_helper_counts():
    recipe = fine(broken(helpers=[shown_load]))

    @recipe.variant
    def through_helper(run, p):
        """selectinload, displayed by a helper that marks the statement"""
        return shown_load(run, p, select(Author).options(orm.selectinload(Author.books)))

    assert ids(recipe) == []


def test_e007_a_pure_delegation_shows_no_sqlalchemy():
    recipe = fine(broken(helpers=[load]))

    @recipe.variant
    def lazy(run, p):
        """lazy: everything happens in a helper"""
        return load(run, p, orm.lazyload)

    assert ids(recipe) == ["playground.E007"]
    assert contract.sqlalchemy_calls(lazy) == []


def test_e008_a_helper_whose_code_the_page_does_not_show():
    recipe = fine(broken())  # shown_load is not registered with @recipe.helper

    @recipe.variant
    def hidden(run, p):
        """selectinload, displayed by an unregistered helper"""
        return shown_load(run, p, select(Author).options(orm.selectinload(Author.books)))

    assert ids(recipe) == ["playground.E008"]
    recipe.helper(shown_load)
    assert ids(recipe) == []


def test_e009_e010_no_summary_and_no_docs():
    assert sorted(ids(fine(broken(summary="  ", docs=())))) == ["playground.E009", "playground.E010"]


def test_e011_a_companion_that_is_not_registered():
    found = contract.recipe_problems(fine(broken(companions=("nowhere",))), MODULE, known_slugs={"broken"})
    assert [p.code for p in found] == ["E011"]


def test_e012_fails_with_but_no_reason():
    recipe = fine(broken())

    @recipe.variant(fails_with="duplicate key")
    def half_declared(run, p):
        """Fails, but does not say why"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT 1")))

    assert ids(recipe) == ["playground.E012"]


def test_e013_notes_that_never_read_the_run():
    recipe = fine(broken())

    @recipe.notes
    def canned(result):
        return ["This is always 2 ms."]

    assert ids(recipe) == ["playground.E013"]


def test_e014_needs_version_that_is_no_major_version():
    recipe = fine(broken())

    @recipe.variant(needs_version="18")
    def wrongly_declared(run, p):
        """Needs a newer server, said as text"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT uuidv7()")))

    @recipe.variant(needs_version=18)
    def rightly_declared(run, p):
        """Needs a newer server"""
        with run.connect() as conn:
            conn.execute(run.main(text("SELECT uuidv7()")))

    assert ids(recipe) == ["playground.E014"]
    assert recipe.variants["rightly-declared"].refusal_on(16).startswith("The rightly-declared variant needs")
    assert recipe.variants["rightly-declared"].refusal_on(18) is None


# --- the guide's example ---------------------------------------------------------------------------
GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adding-a-recipe.md"


def guide_example(tmp_path: Path) -> ModuleType:
    """The complete module docs/adding-a-recipe.md walks through, imported from a file of its own."""
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    (source,) = [b for b in blocks if 'slug="latest-per-owner"' in b]
    path = tmp_path / "latest_per_owner.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("guide_latest_per_owner", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.django_db(transaction=True)
def test_the_guides_example_keeps_the_contract_and_runs(tmp_path, engine):
    recipe = guide_example(tmp_path).recipe
    assert contract.recipe_problems(recipe, "recipes.reading.latest_per_owner") == []
    for variant in recipe.variant_list:
        result = runner.run(recipe=recipe, variant=variant.slug, params={"rows": 1000}, engine=engine)
        assert result.ok, result.error
        assert result.plan is not None and result.plan.json
        assert result.metrics["owners"] == 1000
        assert any("rows for 1,000 owners" in line for line in result.notes), result.notes
