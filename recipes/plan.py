"""Reading EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON): a flat tree with derived figures.

Postgres reports each node's `Actual Total Time` per loop and inclusive of its children; the
figures a person wants are the node's own (exclusive) time over all loops and how far the
planner's row estimate was off. Those are computed once here and handed to templates and notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCAN_NODES = {
    "Seq Scan",
    "Index Scan",
    "Index Only Scan",
    "Bitmap Heap Scan",
    "Tid Scan",
    "Tid Range Scan",
}


SEQ_SCAN_MANY = 10_000
"""A sequential scan reading at least this many rows earns a badge."""


def _spill(raw: dict[str, Any]) -> str | None:
    if raw.get("Sort Space Type") == "Disk":
        return f"sort spilled to disk ({raw.get('Sort Space Used', 0):,} kB)"
    if int(raw.get("Hash Batches", 1) or 1) > 1:
        return f"hash split into {raw['Hash Batches']} batches (spilled to disk)"
    return None


@dataclass
class Node:
    """One plan node with the figures worth showing."""

    depth: int
    node_type: str
    relation: str | None
    index: str | None
    plan_rows: float
    actual_rows: float
    """Rows produced over all loops."""
    loops: int
    inclusive_ms: float
    """This node and its children, over all loops."""
    exclusive_ms: float = 0.0
    rows_removed: int = 0
    """Rows a filter or recheck read and threw away."""
    shared_hit: int = 0
    shared_read: int = 0
    details: list[str] = field(default_factory=list)
    heap_fetches: int = 0
    """Index Only Scan rows that still had to visit the table (visibility map not set)."""
    spilled: str | None = None
    """How a sort or hash went to disk, when it did."""
    below_limit: bool = False
    """Under a Limit the executor stops early, so the planner's full-row estimate is not a miss."""
    share: float = 0.0
    """Fraction of the execution time spent in this node itself."""
    index_searches: int | None = None
    """Descents into the index from its root (Postgres 18's "Index Searches"); None when not reported."""

    @property
    def label(self) -> str:
        text = self.node_type
        if self.index:
            text += f" using {self.index}"
        if self.relation:
            text += f" on {self.relation}"
        return text

    @property
    def rows_read(self) -> int:
        return int(self.actual_rows + self.rows_removed)

    @property
    def misestimate(self) -> float:
        """How many times the estimate was off (≥ 1), e.g. 12.0 whichever way it erred."""
        estimated = max(self.plan_rows * self.loops, 1.0)
        actual = max(self.actual_rows, 1.0)
        return max(estimated, actual) / min(estimated, actual)

    @property
    def misestimated(self) -> bool:
        """Off by 10× or more where the estimate is meant to be comparable."""
        return not self.below_limit and self.misestimate >= 10

    @property
    def underestimated(self) -> bool:
        return self.actual_rows > self.plan_rows * self.loops

    @property
    def heat(self) -> str:
        """'hot' for a node taking half the time or more, 'warm' from a fifth."""
        return "hot" if self.share >= 0.5 else "warm" if self.share >= 0.2 else ""

    @property
    def badges(self) -> list[tuple[str, str]]:
        """(text, kind) labels for what this node teaches; kind is 'warn' or 'info'."""
        found: list[tuple[str, str]] = []
        if self.node_type in ("Seq Scan", "Parallel Seq Scan") and self.rows_read >= SEQ_SCAN_MANY:
            found.append((f"Seq Scan over {self.rows_read:,} rows", "warn"))
        if self.rows_removed:
            found.append((f"{self.rows_removed:,} rows removed by filter", "warn"))
        if self.heap_fetches:
            found.append((f"{self.heap_fetches:,} heap fetches", "warn"))
        if self.spilled:
            found.append((self.spilled, "warn"))
        if self.misestimated:
            direction = "under" if self.underestimated else "over"
            found.append((f"rows {direction}estimated ×{self.misestimate:,.0f}", "warn"))
        return found


@dataclass
class PlanSummary:
    nodes: list[Node]
    planning_ms: float
    execution_ms: float

    @property
    def scans(self) -> list[Node]:
        return [n for n in self.nodes if n.node_type in SCAN_NODES]

    @property
    def rows_read(self) -> int:
        """Rows the table and index scans produced or filtered away: the work done."""
        return sum(n.rows_read for n in self.scans)

    @property
    def shared_hit(self) -> int:
        """Pages found in shared buffers by the whole plan (the top node's count includes its children)."""
        return self.nodes[0].shared_hit if self.nodes else 0

    @property
    def shared_read(self) -> int:
        """Pages the whole plan had to read in from the OS or disk."""
        return self.nodes[0].shared_read if self.nodes else 0

    @property
    def key_scan(self) -> Node | None:
        """The scan that read the most rows: usually the answer to "why is this slow?"."""
        return max(self.scans, key=lambda n: n.rows_read, default=None)


def summarize(plan_json: list[dict[str, Any]]) -> PlanSummary:
    top = plan_json[0]
    nodes: list[Node] = []
    _walk(top["Plan"], 0, nodes)
    execution = float(top.get("Execution Time", 0.0))
    for node in nodes:
        node.share = node.exclusive_ms / execution if execution else 0.0
    return PlanSummary(nodes=nodes, planning_ms=float(top.get("Planning Time", 0.0)), execution_ms=execution)


_DETAIL_KEYS = (
    "Index Cond",
    "Filter",
    "Recheck Cond",
    "Hash Cond",
    "Join Filter",
    "Sort Key",
    "Sort Method",
    "Presorted Key",
    "Index Searches",
)


def _walk(raw: dict[str, Any], depth: int, out: list[Node], below_limit: bool = False) -> Node:
    loops = int(raw.get("Actual Loops", 1) or 1)
    node = Node(
        depth=depth,
        node_type=raw["Node Type"],
        relation=raw.get("Relation Name"),
        index=raw.get("Index Name"),
        plan_rows=float(raw.get("Plan Rows", 0)),
        actual_rows=float(raw.get("Actual Rows", 0)) * loops,
        loops=loops,
        inclusive_ms=float(raw.get("Actual Total Time", 0.0)) * loops,
        rows_removed=int(
            (raw.get("Rows Removed by Filter", 0) + raw.get("Rows Removed by Index Recheck", 0)) * loops
        ),
        shared_hit=int(raw.get("Shared Hit Blocks", 0)),
        shared_read=int(raw.get("Shared Read Blocks", 0)),
        below_limit=below_limit,
        heap_fetches=int(raw.get("Heap Fetches", 0)),
        spilled=_spill(raw),
        index_searches=int(raw["Index Searches"]) if "Index Searches" in raw else None,
    )
    for key in _DETAIL_KEYS:
        if key in raw:
            value = raw[key]
            node.details.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    out.append(node)
    children_ms = 0.0
    limited = below_limit or node.node_type == "Limit"
    for child in raw.get("Plans", []):
        walked = _walk(child, depth + 1, out, limited)
        # A SubPlan runs inside this node's own expressions: its time is part of this node's. An
        # InitPlan (a CTE too) runs wherever its value is first needed, possibly further down,
        # whose time already holds it: subtracting it here as well would count it twice.
        if child.get("Parent Relationship") != "InitPlan":
            children_ms += walked.inclusive_ms
    node.exclusive_ms = max(node.inclusive_ms - children_ms, 0.0)
    return node
