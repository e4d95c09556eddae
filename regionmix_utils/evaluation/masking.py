"""A gradient-masking check of one run from its attack records: the warning signs (``FLAGS``)
of Athalye, Carlini & Wagner (ICML 2018, 3.1) and Carlini et al. (2019, 7), compared on the
same ``n_images``. A flag is True (fired), False, or None (records missing)."""

import itertools
from collections import defaultdict
from typing import Any

from regionmix_utils.runs import eps_text

UNBOUNDED_EPS = 64 / 255
FGSM_MARGIN = 2.0  # points: flag 1
UNBOUNDED_ACCURACY = 5.0  # %: flag 3
SQUARE_BUDGETS = (100, 1000)  # flag 2
FLAGS = {
    1: "single-step beats multi-step: FGSM < PGD-10 - 2 points at the same ε",
    2: "black-box beats white-box: Square-100/1000 < the lowest PGD at the same ε",
    3: "unbounded attack does not reach zero: PGD at ε ≥ 64/255 above 5%",
    4: "more budget does not hurt: PGD accuracy rises somewhere as ε grows",
}


def _by_eps(records: list[dict], keep) -> dict[tuple[float, Any], list[dict]]:
    found = defaultdict(list)
    for r in records:
        if keep(r) and r.get("eps", 0) > 0:
            found[(r["eps"], r.get("n_images"))].append(r)
    return found


def masking_check(records: list[dict]) -> dict[str, Any]:
    """{"kind": "masking", "flags": {n: True | False | None}, "evidence": {n: text}} of a run."""
    pgd = [r for r in records if r.get("kind") == "pgd"]
    fgsm = _by_eps(records, lambda r: r.get("kind") == "fgsm")
    square = _by_eps(records, lambda r: r.get("kind") == "square"
                     and r.get("queries") in SQUARE_BUDGETS)  # fmt: skip
    pgd10 = _by_eps(pgd, lambda r: r.get("steps") == 10)
    any_pgd = _by_eps(pgd, lambda r: True)
    flags: dict[int, bool | None] = {}
    evidence: dict[int, str] = {}

    def note(flag: int, hits: list[str], checked: bool) -> None:
        flags[flag] = bool(hits) if checked else None
        if hits:
            evidence[flag] = "; ".join(hits)

    for flag, (weak, strong, margin, name, by) in enumerate((  # flags 1 and 2
        (fgsm, pgd10, FGSM_MARGIN, "FGSM", f"PGD-10 {{:.2f}}% - {FGSM_MARGIN:g}"),
        (square, any_pgd, 0.0, "Square", "PGD {:.2f}%"),
    ), start=1):  # fmt: skip
        hits = []
        for key in sorted(set(weak) & set(strong), key=str):
            low, high = (min(r["accuracy"] for r in found[key]) for found in (weak, strong))
            if low < high - margin:
                hits.append(f"ε={eps_text(key[0])}: {name} {low:.2f}% < {by.format(high)}")
        note(flag, hits, bool(set(weak) & set(strong)))

    large = [r for r in pgd if r["eps"] >= UNBOUNDED_EPS - 1e-9]
    hits = [f"ε={eps_text(r['eps'])}: PGD-{r['steps']} {r['accuracy']:.2f}% > "
            f"{UNBOUNDED_ACCURACY:g}%" for r in large
            if r["accuracy"] > UNBOUNDED_ACCURACY]  # fmt: skip
    note(3, hits, bool(large))

    curves = defaultdict(list)
    for r in pgd:
        curves[(r.get("steps"), r.get("random_start"), r.get("n_images"))].append(r)
    hits = []
    for (steps, _, _), curve in curves.items():
        curve = sorted(curve, key=lambda r: r["eps"])
        for low, high in itertools.pairwise(curve):
            if high["accuracy"] > low["accuracy"]:
                hits.append(f"PGD-{steps}: {high['accuracy']:.2f}% at ε={eps_text(high['eps'])}"
                            f" > {low['accuracy']:.2f}% at ε={eps_text(low['eps'])}")  # fmt: skip
    note(4, hits, any(len(curve) > 1 for curve in curves.values()))
    return {"kind": "masking", "flags": flags, "evidence": evidence}


def flags_text(flags: dict[int, bool | None]) -> str:
    """ "1, 3", "none", "none (3 unchecked)" or "not attacked beyond FGSM": a table cell."""
    if all(v is None for v in flags.values()):
        return "not attacked beyond FGSM"
    fired = [str(n) for n, v in flags.items() if v]
    unchecked = [str(n) for n, v in flags.items() if v is None]
    text = ", ".join(fired) or "none"
    return text + (f" ({', '.join(unchecked)} unchecked)" if unchecked else "")
