"""Claims, declared before their runs are evaluated: the one place that lists them.

A claim says that configuration A scores higher (``direction`` +1) or lower (-1) than B
on a dataset, for one metric (an evaluation kind with its settings: FGSM at ε = 8/255,
Square with 100 queries at 8/255, clean test accuracy). Its direction is part of the
declaration, never taken from the data: the paper's claims take the sign of the
paper's own difference (its Tables 1-4), a study declares its own (``study.Study``).
The verdicts on a family of claims are corrected together (Holm; ``results.judge``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from regionmix_utils import paper

__all__ = ["MATCHED", "NO_CE", "PAPER_EPS", "Claim", "claims_between", "paper_claims", "side"]

NO_CE = "/no-ce"  # a side of a claim: the configuration without the clean CE term
# ... and without it, with a second mixed pass in its place (``TrainConfig.matched_compute``)
MATCHED = "/no-ce-2mix"
PAPER_EPS = 8 / 255  # the paper states no ε; 8/255 is the usual choice on CIFAR
_PAPER_SETTINGS = {
    "clean": (),
    "fgsm": (("eps", PAPER_EPS),),
    "square": (("eps", PAPER_EPS), ("queries", 100)),
}


@dataclass(frozen=True)
class Claim:
    """One declared claim.

    Attributes:
        dataset: where it is judged: the paper's name ("cifar10") for the paper's
            claims (``results.PAPER_DATASET`` maps our subsets onto them), or a dataset
            of ours for a study's claims.
        a, b: sides as ``--compare`` takes them: a method name, ``NO_CE`` appended for
            the configuration without the clean CE term, or a column label.
        kind: the evaluation compared: "clean" or a record kind ("fgsm", "square", ...).
        settings: the record settings it is about, as (key, value) pairs:
            (("eps", 8/255),) for FGSM at 8/255; () for clean accuracy.
        direction: +1 claims A > B, -1 claims A < B.
        table: the paper's table (1-4), or None for a study's own claim.
        paper_delta: the paper's mean of A minus mean of B (points), or None.
        paper_std_a, paper_std_b: the paper's standard deviations over its 3 runs.
        effect: the smallest |Δ| (points) the claim's owner wants to detect: the seed
            planner plans for it (None: the paper's Δ where the regime is the paper's,
            otherwise no plan).
        source: who declared it: "paper" or a study's name.
    """

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

    def __post_init__(self) -> None:
        if self.direction not in (1, -1):
            raise ValueError(f"direction must be +1 (A > B) or -1 (A < B), got {self.direction!r}")
        if self.a == self.b:
            raise ValueError(f"a claim compares two configurations, got {self.a!r} twice")
        object.__setattr__(self, "settings", tuple(self.settings))

    @property
    def text(self) -> str:
        """ "A > B" or "A < B" with the sides' names."""
        return f"{self.a} {'>' if self.direction > 0 else '<'} {self.b}"

    def matches(self, record_settings: dict) -> bool:
        """Whether an evaluation record's settings are the ones this claim is about."""
        from regionmix_utils.runs import snap_eps

        def same(key, value) -> bool:
            found = record_settings.get(key)
            if found is None:
                return False
            return snap_eps(found) == snap_eps(value) if key == "eps" else found == value

        return all(same(key, value) for key, value in self.settings)

    def swapped(self) -> Claim:
        """The same claim with A and B exchanged (and the direction and the paper's Δ)."""
        return dataclasses.replace(
            self, a=self.b, b=self.a, direction=-self.direction,
            paper_delta=None if self.paper_delta is None else -self.paper_delta,
            paper_std_a=self.paper_std_b, paper_std_b=self.paper_std_a,
        )  # fmt: skip


def side(spec: str) -> tuple[str, bool, bool]:
    """(method, clean_ce, matched_compute): "region" -> ("region", True, False);
    "region/no-ce" -> ("region", False, False); "region/no-ce-2mix" -> ("region", False,
    True)."""
    if spec.endswith(MATCHED):
        return spec[: -len(MATCHED)], False, True
    return (spec[: -len(NO_CE)], False, False) if spec.endswith(NO_CE) else (spec, True, False)


_DATASET_ORDER = {name: i for i, name in enumerate(paper.DATASET_TITLES)}


def paper_claims() -> list[Claim]:
    """The paper's claims, declared from its numbers (the direction is the sign of its
    Δ): Table 1, Region Mixup against Mixup and against CutMix per dataset; Table 2, each
    method with the clean CE term against without it; Tables 3-4, Region Mixup against
    Mixup and CutMix under FGSM and Square (at ``PAPER_EPS``; Square with 100 queries)."""
    claims = []
    for cell in paper.CELLS:
        kind = cell.attack or "clean"
        if cell.table in (1, 3, 4) and cell.method != "region":
            region = paper.lookup(cell.dataset, "region", True, cell.attack)
            a, b, mean_a, std_a = "region", cell.method, region.mean, region.std
        elif cell.table == 2 and not cell.clean_ce:
            with_ce = paper.lookup(cell.dataset, cell.method, True, None)
            a, b, mean_a, std_a = cell.method, cell.method + NO_CE, with_ce.mean, with_ce.std
        else:
            continue
        delta = mean_a - cell.mean
        claims.append(Claim(
            cell.dataset, a, b, kind, _PAPER_SETTINGS[kind], 1 if delta > 0 else -1,
            cell.table, delta, std_a, cell.std,
        ))  # fmt: skip
    return sorted(claims, key=lambda c: (c.table, _DATASET_ORDER.get(c.dataset, 9)))


def claims_between(a: str, b: str, dataset: str, claims: list[Claim] | None = None) -> list[Claim]:
    """The claims (the paper's by default) about A against B on ``dataset``, either way
    round, stated as A against B."""
    out = []
    for claim in paper_claims() if claims is None else claims:
        if claim.dataset != dataset:
            continue
        if (claim.a, claim.b) == (a, b):
            out.append(claim)
        elif (claim.a, claim.b) == (b, a):
            out.append(claim.swapped())
    return out
