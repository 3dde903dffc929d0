"""The full-text search recipe's notes in words: what the plan shows (a GIN index finding the
candidates, or a scan testing row after row), and, when nothing matched, why and what to try.

Plain functions of a finished run's figures: nothing here reaches the database.
"""

from __future__ import annotations

from recipes.notes import plural


def scan_lines(summary, returned: int, articles: int) -> list[str]:
    """What the plan shows: a GIN index finding the candidates, or a scan testing row after row."""
    gin = [n for n in summary.nodes if n.index and n.node_type.startswith("Bitmap Index")]
    if gin:
        heap = [n for n in summary.nodes if n.node_type == "Bitmap Heap Scan"]
        kept = (
            f", and rechecking their text kept {int(heap[0].actual_rows):,}"
            if heap and heap[0].rows_removed
            else ""
        )
        return [
            f"{gin[0].label} found {plural(int(gin[0].actual_rows), 'candidate')}; the table was read "
            f"only for them{kept} ({summary.execution_ms:.2f} ms)."
        ]
    scan = summary.key_scan
    if scan is None:
        return []
    tested = f"{scan.label}: {scan.rows_read:,} of {articles:,} rows read, each one's text tested"
    stopped = " until LIMIT had its rows" if scan.below_limit and scan.rows_read < articles else ""
    line = f"{tested}{stopped}, {summary.execution_ms:.2f} ms."
    if scan.index:  # an index gave the order (ORDER BY id), the text test still ran row by row
        return [line + f" {scan.index} served ORDER BY only; no index served the search."]
    return [line + " No index served this query."]


def no_match_line(result) -> str:
    """Why nothing matched, from each word's count in the seeded paragraphs, and what to try."""
    m, q = result.metrics, result.params["q"]
    searched, words = m["searched_as"], m["words_in_paragraphs"]
    config, text_config = (None, None) if searched == "substring" else searched
    if config is None:
        said = [f"No article contains the text '{q}' (ILIKE looks for it as one piece)."]
    else:
        said = [f"No article matched '{q}' under the {config} config."]
    if text_config != config:
        said.append(f"The text it is matched against holds {text_config} lexemes, not {config} ones.")
    dropped = [f"'{word}'" for word, lexeme, _ in words if lexeme is None]
    if dropped:
        empty = ", so the query is empty" if len(dropped) == len(words) else ""
        said.append(f"Left out as stop words: {', '.join(dropped)}{empty}.")
    looked_up = [(word, lexeme, count) for word, lexeme, count in words if lexeme is not None]
    if looked_up:
        line = f"Of the {m['paragraphs']:,} distinct paragraphs the articles repeat, " + "; ".join(
            in_paragraphs(*word) for word in looked_up
        )
        if all(count for _, _, count in looked_up):
            apart = (
                "next to each other, in this order"
                if result.params["parser"] == "phrase"
                else "in one article"
            )
            line += ": each word is there, but never " + ("as this text" if config is None else apart)
        said.append(line + ".")
    if text_config != config:  # any word would miss the same way: the config is what to change
        said.append(f"Try the {text_config} config, the one the text was stored with.")
    elif m.get("try_instead"):
        said.append(f"Try '{m['try_instead']}', a word the text has.")
    return " ".join(said)


def in_paragraphs(word: str, lexeme: str, count: int) -> str:
    """A word, what the config made of it, how many paragraphs have it: 'raising' (as 'rais') is in 2."""
    searched = f"'{word}'" + (f" (as '{lexeme}')" if lexeme != word else "")
    return f"{searched} is in {count:,}" if count else f"{searched} is in none"
