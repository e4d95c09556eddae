"""Claims: A scores higher or lower than B on a dataset and metric, the direction taken from
the paper's Δ or a study's declaration; confirmatory or exploratory from the times of the
declaration and of its runs' first results (``status``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from regionmix_utils import paper
from regionmix_utils.evaluation.robustness import DEFAULT_EPS
from regionmix_utils.runs import Run, snap_eps

SIDES = ("two-sided", "one-sided")
NO_CE = "/no-ce"  # a side of a claim: the configuration without the clean CE term
MATCHED = "/no-ce-2mix"  # ... with a second mixed pass in its place (matched_compute)
# The paper states no ε: DEFAULT_EPS, the usual choice on CIFAR.
_PAPER_SETTINGS = {"clean": (), "fgsm": (("eps", DEFAULT_EPS),),
                   "square": (("eps", DEFAULT_EPS), ("queries", 100))}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Claim:
    """``a`` vs ``b`` (a method [+ NO_CE or MATCHED], or a column label) on ``dataset``: records
    of ``kind`` with ``settings`` ((key, value) pairs); ``direction`` +1: A > B, -1: A < B;
    ``paper_delta``, ``paper_std_a``/``_b`` (points) from the paper's ``table``; ``effect``: the
    |Δ| the seed planner plans for (None: the paper's); ``source``: "paper" or the study's name;
    ``sided``: the test's, "two-sided" or "one-sided" (in ``direction``); ``declared``: when
    the claim was first recorded (ISO 8601: a sealed plan, a commit), None: never."""

    dataset: str
    a: str
    b: str
    kind: str
    settings: tuple[tuple[str, float], ...] = ()
    direction: int = 1
    table: int | None = None
    paper_delta: float | None = None
    paper_std_a: float | None = None
    paper_std_b: float | None = None
    effect: float | None = None
    source: str = "paper"
    sided: str = "two-sided"
    declared: str | None = None

    def __post_init__(self) -> None:
        if self.sided not in SIDES:
            raise ValueError(f"sided must be one of {SIDES}, got {self.sided!r}")
        if self.direction not in (1, -1):
            raise ValueError(f"direction must be +1 (A > B) or -1 (A < B), got {self.direction!r}")
        if self.a == self.b:
            raise ValueError(f"a claim compares two configurations, got {self.a!r} twice")
        object.__setattr__(self, "settings", tuple(self.settings))

    @property
    def alternative(self) -> str:
        """scipy's ``alternative`` for A - B: "two-sided", "greater" or "less"."""
        return "two-sided" if self.sided == "two-sided" else (
            "greater" if self.direction > 0 else "less")  # fmt: skip

    def plan_entry(self) -> dict:
        """What a sealed plan records of the claim (``declared`` aside)."""
        entry = dataclasses.asdict(self) | {"settings": [list(pair) for pair in self.settings]}
        return {k: v for k, v in entry.items() if k != "declared"}

    @property
    def text(self) -> str:
        return f"{self.a} {'>' if self.direction > 0 else '<'} {self.b}"

    def matches(self, record_settings: dict) -> bool:
        """Whether a record's settings are this claim's (ε compared snapped)."""
        return all((found := record_settings.get(key)) is not None
                   and (snap_eps(found) == snap_eps(value) if key == "eps" else found == value)
                   for key, value in self.settings)  # fmt: skip

    def swapped(self) -> Claim:
        """A and B exchanged, with the direction and the paper's Δ."""
        return dataclasses.replace(
            self, a=self.b, b=self.a, direction=-self.direction,
            paper_delta=None if self.paper_delta is None else -self.paper_delta,
            paper_std_a=self.paper_std_b, paper_std_b=self.paper_std_a)  # fmt: skip


def side(spec: str) -> tuple[str, bool, bool]:
    """(method, clean_ce, matched_compute): "region" -> ("region", True, False);
    "region/no-ce" -> (.., False, False); "region/no-ce-2mix" -> (.., False, True)."""
    method = spec.removesuffix(MATCHED).removesuffix(NO_CE)
    return method, method == spec, spec.endswith(MATCHED)  # no suffix: with the clean CE term


def paper_claims() -> list[Claim]:
    """The paper's claims, directed by its Δ: Tables 1, 3, 4 region against each method;
    Table 2, with the clean CE against without (attacks at ``DEFAULT_EPS``, Square-100)."""
    claims = []
    for cell in paper.CELLS:  # each cell is B's; A's is found with the clean CE term
        if cell.table in (1, 3, 4) and cell.method != "region":
            a, b = "region", cell.method
        elif cell.table == 2 and not cell.clean_ce:
            a, b = cell.method, cell.method + NO_CE
        else:
            continue
        found, kind = paper.lookup(cell.dataset, a, True, cell.attack), cell.attack or "clean"
        delta = found.mean - cell.mean
        claims.append(Claim(cell.dataset, a, b, kind, _PAPER_SETTINGS[kind], 1 if delta > 0 else -1,
                            cell.table, delta, found.std, cell.std))  # fmt: skip
    return sorted(claims, key=lambda c: c.table)  # stable: the cells' dataset order within


def claims_between(a: str, b: str, dataset: str) -> list[Claim]:
    """The paper's claims about A against B on ``dataset``, either way round, as A vs B."""
    return [c if (c.a, c.b) == (a, b) else c.swapped() for c in paper_claims()
            if c.dataset == dataset and {c.a, c.b} == {a, b}]  # fmt: skip


def first_seen(run: Run) -> datetime | None:
    """When a run's results could first be seen: its training start (it logs test accuracy
    every epoch) or an earlier evaluation record's ``time``; None: neither is recorded."""
    times = [entry["time"] for entry in run.record.get("history", [])]
    times += [r["time"] for r in run.evaluations() if "time" in r]
    return min((datetime.fromisoformat(t) for t in times), default=None)


def status(claim: Claim, runs: Iterable[Run]) -> str:
    """ "confirmatory": ``claim.declared`` is no later (to the second the records keep) than the
    first result of every run of both its arms (``first_seen``); "exploratory": it is later,
    or either time is not recorded."""
    if claim.declared is None:
        return "exploratory"
    declared = datetime.fromisoformat(claim.declared)
    seen = [first_seen(run) for run in runs]
    return "confirmatory" if all(t is not None and declared <= t for t in seen) else "exploratory"
