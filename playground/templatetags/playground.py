"""SQL formatting (sqlparse), highlighting (Pygments) and plan reading for templates."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import sqlparse
from django import template
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PostgresLexer, PythonLexer

from playground.plan import PlanSummary, summarize
from recipes.results import jsonable

register = template.Library()
_FORMATTER = HtmlFormatter(nowrap=True)


@register.filter
def sql(statement: str) -> str:
    """Reindented, keyword-uppercased, highlighted SQL (Pygments escapes the text)."""
    formatted = sqlparse.format(statement, reindent=True, keyword_case="upper")
    return mark_safe(highlight(formatted, PostgresLexer(), _FORMATTER))


@register.filter
def unwrap(text: str) -> str:
    """Join the hard-wrapped lines of a docstring's paragraphs; blank lines still separate them."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


@register.filter
def python(source: str) -> str:
    return mark_safe(highlight(source, PythonLexer(), _FORMATTER))


@register.filter
def params_json(parameters: Any) -> str:
    if parameters in (None, {}, []):
        return ""
    text = json.dumps(jsonable(parameters), default=str)
    return text if len(text) <= 600 else text[:600] + " …"


@register.simple_tag
def pygments_css() -> str:
    return mark_safe(_css())


@cache
def _css() -> str:
    return HtmlFormatter(style="friendly").get_style_defs(".hl")


@register.filter
def plan_summary(plan) -> PlanSummary | None:
    if plan is None or not plan.json:
        return None
    return summarize(plan.json)


@register.filter
def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


@register.filter
def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
