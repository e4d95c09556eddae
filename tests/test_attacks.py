"""PGD, APGD and AutoAttack (the reference settings and torchattacks' fast variant) beside
FGSM and Square, the ε sweep, the gradient-masking check and Table 7."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from regionmix_utils.cli import main
from regionmix_utils.data import load_dataset
from regionmix_utils.evaluation.masking import flags_text, masking_check
from regionmix_utils.evaluation.robustness import (
    ATTACKS,
    AUTOATTACK_ORDER,
    AttackConfig,
    AutoAttackCascade,
    accuracy,
    adversarial_predictions,
    attack_label,
    attack_outcome,
    evaluate_run,
    fast_autoattack,
    make_attack,
    reference_autoattack,
)
from regionmix_utils.results import collect_evaluations, collect_runs, paper_tables
from regionmix_utils.runs import Run
from regionmix_utils.train import train

from .conftest import tiny_config


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    """A PreAct ResNet-18 (width 8) trained without mixing for 4 epochs on 1000 shapes
    images (about 60% clean accuracy: an ordinary, non-robust network)."""
    root = tmp_path_factory.mktemp("runs")
    config = tiny_config(
        method="none", epochs=4, width=8, batch_size=64, n_train=1000, n_test=200,
        milestones=(3,),
    )  # fmt: skip
    train(config, root, device="cpu", progress=False)
    return Run.of(root, config)


@pytest.fixture(scope="module")
def shapes_model(shapes_run):
    model = shapes_run.load_model()
    test = load_dataset("shapes", n_train=1, n_test=200).test
    return model, test.images.float() / 255, test.labels


def adversarial_accuracy(model, images, labels, config, **options) -> float:
    """Accuracy in percent after ``config``'s attack."""
    predicted = adversarial_predictions(model, images, labels, config, **options)
    return 100.0 * int((predicted == labels).sum()) / len(labels)


class Saturated(nn.Module):
    """A model made to mask its gradient: the trained model's logits times 10^4, so
    float32 softmax saturates and the cross-entropy gradient of every confidently
    classified image is exactly zero. It classifies exactly as the model does, is no
    more robust, and defeats every gradient attack: the textbook case of masking."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.linear = model, model.linear

    def forward(self, x):
        return self.model(x) * 1e4


# ------------------------------------------------------------------------ the attacks


def test_pgd_of_one_step_of_size_eps_without_random_start_is_fgsm(shapes_model):
    model, images, labels = shapes_model
    eps = 8 / 255
    one_step = AttackConfig("pgd", eps, steps=1, step_size=eps, random_start=False)
    pgd = make_attack(model, one_step)(images, labels)
    fgsm = make_attack(model, AttackConfig("fgsm", eps))(images, labels)
    assert torch.equal(pgd, fgsm)


def test_pgd_is_at_least_as_strong_as_fgsm_on_a_trained_model(shapes_model):
    model, images, labels = shapes_model
    one_image = 100 / len(labels)
    for eps in (2 / 255, 8 / 255):
        fgsm = adversarial_accuracy(model, images, labels, AttackConfig("fgsm", eps),
                                    progress=False)  # fmt: skip
        pgd = adversarial_accuracy(model, images, labels, AttackConfig("pgd", eps),
                                   progress=False)  # fmt: skip
        assert pgd <= fgsm + one_image, (eps, pgd, fgsm)
    assert pgd < accuracy(model, images, labels) / 2, "PGD hardly hurt: the test shows nothing"


# AutoAttack runs 9 x 100 iterations of APGD-T and of FAB-T and 5,000 Square queries on
# every image its first attack leaves correct (about a minute per image on a CPU): the tests
# that run it use CPU-sized budgets (``cpu_sized``), mostly at a large ε, where APGD-CE
# leaves little for the later attacks. The registered defaults are checked by inspection
# (test_autoattack_is_built_with_the_reference_settings).
LARGE_EPS = 32 / 255
AUTOATTACKS = ("autoattack", "autoattack-fast")
# The reference's 100 iterations cut to 20 (still twice the fast variant's 10, which is
# kept), both Squares' 5,000 queries to 100.
CPU_STEPS, CPU_QUERIES = 20, 100


def _log_calls(cascade, calls: list) -> None:
    """Append (attack name, number of images) to ``calls`` each time one of the cascade's
    attacks is called."""
    for name, attack in zip(cascade.names, cascade.attacks, strict=True):

        def logged(images, labels, _forward=attack.forward, _name=name):
            calls.append((_name, len(images)))
            return _forward(images, labels)

        attack.forward = logged


def _cpu_sized(name: str, calls: list | None = None):
    """The registry entry of AutoAttack ``name`` at the CPU-sized budgets, its records
    saying so; each call of one of its attacks is appended to ``calls`` when given."""
    import dataclasses

    def build(model, config, num_classes):
        if name == "autoattack":
            cascade = reference_autoattack(model, config.eps, num_classes, config.seed,
                                           CPU_STEPS, queries=CPU_QUERIES)  # fmt: skip
        else:
            cascade = fast_autoattack(model, config.eps, num_classes, config.seed)
            cascade.attacks[3].n_queries = CPU_QUERIES
        if calls is not None:
            _log_calls(cascade, calls)
        return cascade

    fixed = {**dict(ATTACKS[name].fixed), "queries": CPU_QUERIES}
    if name == "autoattack":
        fixed["steps"] = CPU_STEPS
    return dataclasses.replace(ATTACKS[name], build=build, fixed=tuple(fixed.items()))


@pytest.fixture
def cpu_sized(monkeypatch):
    """Both AutoAttacks of the registry at the CPU-sized budgets, and one intra-op thread
    (their many small batches run faster so on a shared 2-core machine), while the test
    runs."""
    for name in AUTOATTACKS:
        monkeypatch.setitem(ATTACKS, name, _cpu_sized(name))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_stays_in_the_eps_ball_and_in_unit_range(shapes_model, name, cpu_sized):
    model, images, labels = shapes_model
    x, y = images[:24], labels[:24]
    eps = LARGE_EPS if name in AUTOATTACKS else 4 / 255
    config = AttackConfig(name, eps, queries=20, steps=5)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        adversarial = make_attack(model, config)(x, y)
    assert (adversarial - x).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    assert adversarial.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_eps_zero_gives_clean_accuracy_for_every_attack(shapes_model, name):
    model, images, labels = shapes_model
    x, y = images[:40], labels[:40]
    clean = accuracy(model, x, y)
    config = AttackConfig(name, 0.0, queries=10, steps=3)
    assert adversarial_accuracy(model, x, y, config, progress=False) == clean
    if name not in AUTOATTACKS:  # the attack itself, not only the shortcut at eps = 0
        with torch.random.fork_rng():
            adversarial = make_attack(model, config)(x, y)
        assert torch.equal(adversarial, x)


@pytest.mark.parametrize("name", ["pgd", "apgd-ce", *AUTOATTACKS])
def test_seeded_attacks_are_reproducible_and_leave_the_global_rng_alone(shapes_model, name,
                                                                         cpu_sized):  # fmt: skip
    model, images, labels = shapes_model
    x, y = images[:32], labels[:32]
    config = AttackConfig(name, LARGE_EPS if name == "autoattack" else 8 / 255, steps=3, seed=5)
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    first = adversarial_predictions(model, x, y, config, batch_size=16, progress=False)
    assert torch.equal(torch.get_rng_state(), state), f"{name} changed the global RNG"
    second = adversarial_predictions(model, x, y, config, batch_size=16, progress=False)
    assert torch.equal(first, second)


def test_pgd_settings_are_passed_to_torchattacks(shapes_model):
    model = shapes_model[0]
    pgd = make_attack(model, AttackConfig("pgd"))
    assert (pgd.eps, pgd.alpha, pgd.steps, pgd.random_start) == (8 / 255, 2 / 255, 10, True)
    other = make_attack(model, AttackConfig("pgd", 4 / 255, steps=50, step_size=0.5 / 255,
                                            random_start=False))  # fmt: skip
    assert (other.eps, other.alpha, other.steps, other.random_start) == (
        4 / 255, 0.5 / 255, 50, False,
    )  # fmt: skip
    apgd = make_attack(model, AttackConfig("apgd-dlr", steps=20, seed=3))
    assert (apgd.norm, apgd.eps, apgd.steps, apgd.n_restarts, apgd.seed, apgd.loss) == (
        "Linf", 8 / 255, 20, 1, 3, "dlr",
    )  # fmt: skip
    assert AttackConfig("pgd").settings() == {
        "kind": "pgd", "eps": 8 / 255, "steps": 10, "step_size": 2 / 255,
        "random_start": True, "seed": 0,
    }  # fmt: skip
    assert AttackConfig("fgsm", steps=50).settings() == {"kind": "fgsm", "eps": 8 / 255}


def test_bad_attack_arguments_name_the_argument_and_what_is_allowed(shapes_model):
    with pytest.raises(ValueError, match=r"attack must be one of \('fgsm', 'pgd', 'apgd-ce'"):
        AttackConfig("bim")
    for eps in (-1 / 255, 1.5):
        with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
            AttackConfig("pgd", eps)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        AttackConfig("pgd", steps=0)
    with pytest.raises(ValueError, match=r"step_size must be in \[0, 1\]"):
        AttackConfig("pgd", step_size=-0.1)
    model = shapes_model[0]
    with pytest.raises(ValueError, match="'autoattack' needs a model with >= 4 classes"):
        make_attack(model, AttackConfig("autoattack"), num_classes=3)
    with pytest.raises(ValueError, match="'apgd-dlr' needs a model with >= 3 classes"):
        make_attack(model, AttackConfig("apgd-dlr"), num_classes=2)
    make_attack(model, AttackConfig("pgd"), num_classes=2)  # PGD takes any class count


# -------------------------------------------------------------------- AutoAttack


def test_autoattack_is_built_with_the_reference_settings(shapes_model):
    """The registered "autoattack" is fra31/auto-attack's ``AutoAttack(version="standard")`` for L∞
    (autoattack.py: ``AutoAttack.__init__`` and ``set_version``), built from torchattacks'
    attacks; "autoattack-fast" is torchattacks' own AutoAttack, unchanged."""
    import torchattacks as ta

    model = shapes_model[0]
    auto = make_attack(model, AttackConfig("autoattack", seed=2))
    assert auto.names == AUTOATTACK_ORDER == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert [type(a) for a in auto.attacks] == [ta.APGD, ta.APGDT, ta.FAB, ta.Square]
    for attack in auto.attacks:  # seeded from the config, never from the clock
        assert (attack.model, attack.norm, attack.eps, attack.seed, attack.n_restarts) == (
            model, "Linf", 8 / 255, 2, 1,
        )  # fmt: skip
    apgd, apgdt, fab, square = auto.attacks
    assert (apgd.steps, apgd.loss, apgd.eot_iter, apgd.thr_decr) == (100, "ce", 1, 0.75)
    assert (apgdt.steps, apgdt.n_target_classes, apgdt.eot_iter, apgdt.thr_decr) == (
        100, 9, 1, 0.75,
    )  # fmt: skip
    assert (fab.steps, fab.multi_targeted, fab.n_target_classes) == (100, True, 9)
    assert (fab.alpha_max, fab.eta, fab.beta) == (0.1, 1.05, 0.9)
    assert (square.n_queries, square.p_init, square.loss, square.rescale_schedule) == (
        5000, 0.8, "margin", False,
    )  # fmt: skip
    fast = make_attack(model, AttackConfig("autoattack-fast", seed=2))
    assert fast.names == AUTOATTACK_ORDER
    assert [type(a) for a in fast.attacks] == [ta.APGD, ta.APGDT, ta.FAB, ta.Square]
    assert [a.seed for a in fast.attacks] == [2, 2, 2, 2]
    assert [a.steps for a in fast.attacks[:3]] == [10, 10, 10]
    assert (fast.attacks[3].n_queries, fast.attacks[3].rescale_schedule) == (5000, True)
    many = fast_autoattack(model, 8 / 255, num_classes=100)  # torchattacks: K - 1 targets
    assert many.attacks[1].n_target_classes == many.attacks[2].n_target_classes == 99

    # Square's p (the share of pixels a square covers) halves after query 10, 50, 200, ...
    # The reference does not rescale that schedule to its 5,000 queries, so it ends at
    # p_init / 128; torchattacks' AutoAttack rescales it (query i counts as 2i) to p_init / 512.
    def halvings(attack):
        return [attack.p_init / attack.p_selection(i) for i in (10, 11, 26, 51, 4001, 4999)]

    assert halvings(square) == [1, 2, 2, 4, 128, 128]
    assert halvings(fast.attacks[3]) == [2, 2, 4, 4, 512, 512]

    assert AttackConfig("autoattack").settings() == {
        "kind": "autoattack", "eps": 8 / 255, "version": "standard", "seed": 0,
        "steps": 100, "targets": 9, "queries": 5000,
    }  # fmt: skip
    fast_settings = AttackConfig("autoattack-fast").settings()
    assert fast_settings == {"kind": "autoattack-fast", "eps": 8 / 255, "version": "standard",
                             "seed": 0, "steps": 10}  # fmt: skip
    assert attack_label(AttackConfig("autoattack").settings()) == "AutoAttack"
    assert attack_label(fast_settings) == "AutoAttack-fast"


class Confident(nn.Module):
    """A linear classifier of 8 x 8 images whose class-0 logit leads by 50: an ε = 8/255
    perturbation moves a logit by at most about 0.05, so every image of class 0 stays
    correct through every attack and every target class."""

    def __init__(self, classes: int):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, classes)
        with torch.no_grad():
            weights = torch.randn(classes, 3 * 8 * 8, generator=torch.Generator().manual_seed(0))
            self.linear.weight.copy_(0.01 * weights)
            self.linear.bias.zero_()
            self.linear.bias[0] = 50.0

    def forward(self, x):
        return self.linear(x.flatten(1))


def _images(n: int) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("classes", "targets"), [(20, 9), (10, 9), (5, 4)])
def test_targeted_attacks_use_nine_target_classes_or_every_other_class_when_fewer(
    classes, targets, monkeypatch
):
    """APGD-T and FAB-T attack the 2nd- to 10th-ranked classes (9 targets, the reference's
    n_target_classes), or every other class of a model with fewer than 10."""
    import torchattacks as ta

    seen = {"apgd-t": [], "fab-t": []}

    def spy(method, key):
        def wrapped(self, *args, **kwargs):
            seen[key].append(self.target_class)
            return method(self, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(ta.APGDT, "attack_single_run", spy(ta.APGDT.attack_single_run, "apgd-t"))
    monkeypatch.setattr(ta.FAB, "attack_single_run_targeted",
                        spy(ta.FAB.attack_single_run_targeted, "fab-t"))  # fmt: skip
    model = Confident(classes).eval()
    attack = reference_autoattack(model, 8 / 255, classes, steps=2, queries=2)
    assert attack.attacks[1].n_target_classes == attack.attacks[2].n_target_classes == targets
    attack(_images(3), torch.zeros(3, dtype=torch.long))
    ranks = list(range(2, targets + 2))  # one restart per target class
    assert seen == {"apgd-t": ranks, "fab-t": ranks}


def test_the_cascade_attacks_only_the_images_still_correct_in_the_reference_order():
    model = Confident(10).eval()
    attack = reference_autoattack(model, 8 / 255, 10, steps=2, queries=2)
    calls = []
    _log_calls(attack, calls)
    labels = torch.tensor([0, 0, 3, 0])  # the third is misclassified: never attacked
    adversarial = attack(_images(4), labels)
    assert calls == [("apgd-ce", 3), ("apgd-t", 3), ("fab-t", 3), ("square", 3)]
    assert attack.stages == [
        {"attack": name, "n_attacked": 3, "n_robust_after": 3} for name in AUTOATTACK_ORDER
    ]
    assert torch.equal(adversarial[2], _images(4)[2])


class Fragile(nn.Module):
    """A linear classifier of 8 x 8 images whose class-0 logit is 40 (mean pixel - 0.5)
    and whose other logits are near 0: an image of constant value v is classified as 0
    when v > 0.5, and an ε = 8/255 perturbation moves that logit by up to 1.25, so an
    image of value 0.52 or 0.53 is fooled by any gradient attack and one of 0.85 or above
    by none."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, classes)
        with torch.no_grad():
            weights = torch.randn(classes, 3 * 8 * 8, generator=torch.Generator().manual_seed(0))
            self.linear.weight.copy_(0.001 * weights)
            self.linear.weight[0] = 40 / (3 * 8 * 8)
            self.linear.bias.zero_()
            self.linear.bias[0] = -20.0

    def forward(self, x):
        return self.linear(x.flatten(1))


def _constant_images(values) -> torch.Tensor:
    """One 3 x 8 x 8 image of each constant value [N, 3, 8, 8]."""
    return torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()


def _values(images: torch.Tensor) -> list[float]:
    """Which constant images (by value, to 2 decimals) a call received."""
    return sorted(round(float(x.mean()), 2) for x in images)


def test_the_cascade_attacks_again_none_of_the_images_its_first_attack_fooled():
    """The reference's cascade on a model APGD-CE does fool on two of four images: the
    three later attacks run on the two it left correct, and only on them; a fooled image
    comes back as APGD-CE found it, a robust one unchanged."""
    model = Fragile().eval()
    values = [0.9, 0.52, 0.85, 0.53, 0.3]  # 0.3 is misclassified: never attacked
    images, labels = _constant_images(values), torch.zeros(5, dtype=torch.long)
    assert (model(images).argmax(1) == 0).tolist() == [True, True, True, True, False]
    attack = reference_autoattack(model, 8 / 255, 10, steps=2, queries=2)
    received = []
    for name, stage in zip(attack.names, attack.attacks, strict=True):

        def logged(x, y, _forward=stage.forward, _name=name):
            received.append((_name, _values(x)))
            return _forward(x, y)

        stage.forward = logged
    adversarial = attack(images, labels)
    assert received == [("apgd-ce", [0.52, 0.53, 0.85, 0.9])] + [
        (name, [0.85, 0.9]) for name in AUTOATTACK_ORDER[1:]
    ]
    assert [(s["n_attacked"], s["n_robust_after"]) for s in attack.stages] == [
        (4, 2), (2, 2), (2, 2), (2, 2),
    ]  # fmt: skip
    correct = model(adversarial).argmax(1) == labels
    assert correct.tolist() == [True, False, True, False, False]
    for i in (0, 2, 4):  # robust, and misclassified to begin with: the images themselves
        assert torch.equal(adversarial[i], images[i])
    for i in (1, 3):  # fooled within the ε-ball
        assert 0 < (adversarial[i] - images[i]).abs().max() <= 8 / 255 + 1e-6


def test_the_cascade_keeps_an_image_correct_only_if_every_attack_left_it_so():
    """Four scripted attacks, each fooling the images of given values it receives (moved
    to a value the model misclassifies): each attack receives exactly the clean images
    every earlier one left correct; an image is robust after the cascade only if it was
    classified right and no stage fooled it (the AND over the stages); a fooled image
    keeps the first fooling image found, a robust one comes back as it was."""
    model = Fragile().eval()
    values = [0.9, 0.52, 0.85, 0.86, 0.3, 0.95]
    images, labels = _constant_images(values), torch.zeros(6, dtype=torch.long)
    # attack -> (the values it fools, the value it moves them to); "d" would fool 0.52
    # and 0.85 again, to 0.34, if it were given them.
    fools = {"a": ({0.52}, 0.31), "b": ({0.85}, 0.32), "c": (set(), 0.0),
             "d": ({0.52, 0.85, 0.86}, 0.34)}  # fmt: skip
    received = {}

    def scripted(name: str):
        def attack(x, y):
            received[name] = _values(x)
            targets, to = fools[name]
            out = x + 0.01  # an image it does not fool comes back moved, still correct
            for i in range(len(x)):
                if round(float(x[i].mean()), 2) in targets:
                    out[i] = to
            return out

        return attack

    cascade = AutoAttackCascade(model, tuple(fools), [scripted(name) for name in fools])
    adversarial = cascade(images, labels)
    assert received == {"a": [0.52, 0.85, 0.86, 0.9, 0.95], "b": [0.85, 0.86, 0.9, 0.95],
                        "c": [0.86, 0.9, 0.95], "d": [0.86, 0.9, 0.95]}  # fmt: skip
    assert [(s["attack"], s["n_attacked"], s["n_robust_after"]) for s in cascade.stages] == [
        ("a", 5, 4), ("b", 4, 3), ("c", 3, 3), ("d", 3, 2),
    ]  # fmt: skip
    # Each stage alone, on the clean images: which it would leave correct.
    clean = (model(images).argmax(1) == labels).tolist()
    alone = [[v not in targets for v in values] for targets, _ in fools.values()]
    expected = [all(column) for column in zip(clean, *alone, strict=True)]
    assert expected == [True, False, False, False, False, True]
    assert (model(adversarial).argmax(1) == labels).tolist() == expected
    assert [round(float(x.mean()), 2) for x in adversarial] == [0.9, 0.31, 0.32, 0.34, 0.3,
                                                                0.95]  # fmt: skip


CASCADE_IMAGES = 40


@pytest.fixture(scope="module")
def cascades(shapes_model):
    """Both AutoAttacks (CPU-sized) at ε = 8/255 on the same 40 test images of the trained
    model, through ``attack_outcome`` in batches of 20 (as ``regionmix attack`` runs them):
    {name: (predicted [40], stages, calls)}, calls the (attack, images) of each call."""
    model, images, labels = shapes_model
    x, y = images[:CASCADE_IMAGES], labels[:CASCADE_IMAGES]
    outcomes, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # see cpu_sized
    try:
        for name in AUTOATTACKS:
            calls = []
            with pytest.MonkeyPatch.context() as patch:
                patch.setitem(ATTACKS, name, _cpu_sized(name, calls))
                predicted, stages = attack_outcome(model, x, y, AttackConfig(name, 8 / 255),
                                                   batch_size=20, progress=False)  # fmt: skip
            outcomes[name] = (predicted, stages, calls)
    finally:
        torch.set_num_threads(threads)
    return outcomes


def test_reference_autoattack_never_reports_higher_accuracy_than_the_fast_variant(
    cascades, shapes_model
):
    labels = shapes_model[2][:CASCADE_IMAGES]
    reference, fast = cascades["autoattack"], cascades["autoattack-fast"]
    assert int((reference[0] == labels).sum()) <= int((fast[0] == labels).sum())
    for mine, theirs in zip(reference[1], fast[1], strict=True):  # after every attack too
        assert mine["n_robust_after"] <= theirs["n_robust_after"], (reference[1], fast[1])
    first = reference[1][0]
    assert 0 < first["n_robust_after"] < first["n_attacked"], "nothing for the later attacks"


@pytest.mark.parametrize("name", AUTOATTACKS)
def test_autoattack_runs_its_four_attacks_in_order_each_on_the_images_left_correct(
    cascades, shapes_model, name
):
    model, images, labels = shapes_model
    x, y = images[:CASCADE_IMAGES], labels[:CASCADE_IMAGES]
    predicted, stages, calls = cascades[name]
    assert [s["attack"] for s in stages] == list(AUTOATTACK_ORDER)
    assert stages[0]["n_attacked"] == int((model(x).argmax(1) == y).sum())  # clean-correct
    for before, after in itertools.pairwise(stages):
        assert after["n_attacked"] == before["n_robust_after"]
    assert stages[-1]["n_robust_after"] == int((predicted == y).sum())
    # Each batch calls the attacks in the reference order, each with the batch's images
    # still correct; the calls add up to the stage counts.
    batches, order = [], {n: i for i, n in enumerate(AUTOATTACK_ORDER)}
    for attack, n in calls:
        if attack == "apgd-ce":
            batches.append([])
        batches[-1].append((attack, n))
    assert len(batches) == CASCADE_IMAGES // 20
    for batch in batches:
        assert [order[a] for a, _ in batch] == list(range(len(batch)))
        assert [n for _, n in batch] == sorted((n for _, n in batch), reverse=True)
    for stage in stages:
        assert sum(n for a, n in calls if a == stage["attack"]) == stage["n_attacked"]


# ------------------------------------------------------------------- masking check


def _records(**accuracies):
    """Records of one run: name "fgsm_8" -> FGSM at 8/255, "pgd10_64" -> PGD-10 at
    64/255, "square100_8" -> Square-100 at 8/255, all on 500 images."""
    records = []
    for key, value in accuracies.items():
        name, eps = key.split("_")
        record = {"eps": int(eps) / 255, "n_images": 500, "accuracy": value}
        if name == "fgsm":
            record["kind"] = "fgsm"
        elif name.startswith("pgd"):
            record |= {"kind": "pgd", "steps": int(name[3:]), "random_start": True}
        else:
            record |= {"kind": "square", "queries": int(name[6:])}
        records.append(record)
    return records


def test_each_masking_flag_fires_on_records_built_to_trigger_it():
    plain = dict(fgsm_8=30.0, pgd10_8=5.0, pgd10_4=20.0, pgd10_64=0.0, square100_8=40.0)
    check = masking_check(_records(**plain))
    assert check["flags"] == {1: False, 2: False, 3: False, 4: False}
    assert flags_text(check["flags"]) == "none"
    cases = {
        1: dict(plain, fgsm_8=2.5, pgd10_8=5.0, pgd10_4=5.0),  # 2.5 < 5 - 2
        2: dict(plain, square100_8=4.0),  # Square below PGD
        3: dict(plain, pgd10_8=6.0, pgd10_64=5.5),
        4: dict(plain, pgd10_4=4.0),  # 4% at 4/255 < 5% at 8/255
    }
    for flag, accuracies in cases.items():
        check = masking_check(_records(**accuracies))
        assert [n for n, v in check["flags"].items() if v] == [flag], (flag, check)
        assert check["evidence"][flag]
    on_the_edge = masking_check(_records(**dict(plain, fgsm_8=3.0, pgd10_64=5.0)))
    assert not any(on_the_edge["flags"].values()), "the rules are strict inequalities"


def test_masking_flags_need_their_records_and_the_same_images():
    check = masking_check(_records(fgsm_8=50.0))
    assert check["flags"] == {1: None, 2: None, 3: None, 4: None}
    assert flags_text(check["flags"]) == "not attacked beyond FGSM"
    assert flags_text({**check["flags"], 1: False}) == "none (2, 3, 4 unchecked)"
    other_images = _records(fgsm_8=50.0, pgd10_8=5.0)
    other_images[1]["n_images"] = 100
    assert masking_check(other_images)["flags"][1] is None


def _attack_records(model, images, labels, configs):
    records = []
    for config in configs:
        acc = adversarial_accuracy(model, images, labels, config, progress=False)
        records.append({**config.settings(), "n_images": len(labels), "accuracy": acc})
    return records


def _check_configs():
    return [AttackConfig("fgsm", 8 / 255), AttackConfig("square", 8 / 255, queries=100)] + [
        AttackConfig("pgd", eps / 255) for eps in (2, 8, 64)
    ]


def test_masking_check_is_clear_on_a_plain_model_and_fires_on_a_saturated_one(shapes_model):
    model, images, labels = shapes_model
    x, y = images[:100], labels[:100]
    plain = masking_check(_attack_records(model, x, y, _check_configs()))
    assert plain["flags"] == {1: False, 2: False, 3: False, 4: False}, plain
    masked = Saturated(model).eval()
    assert accuracy(masked, x, y) == accuracy(model, x, y)
    check = masking_check(_attack_records(masked, x, y, _check_configs()))
    assert check["flags"][2] and check["flags"][3], check


# -------------------------------------------------------------- records and tables


def test_evaluate_run_stores_records_with_per_image_predictions(shapes_run, cpu_sized):
    from regionmix_utils.runs import evaluation_settings

    configs = [AttackConfig("fgsm", 4 / 255), AttackConfig("pgd", 4 / 255, steps=3),
               *(AttackConfig(name, LARGE_EPS) for name in AUTOATTACKS)]  # fmt: skip
    records = evaluate_run(shapes_run, configs, n_images=60, progress=False, capped_images=20)
    assert [(r["kind"], r["n_images"]) for r in records] == [
        ("clean", 60), ("fgsm", 60), ("pgd", 60), ("clean", 20), ("autoattack", 20),
        ("autoattack-fast", 20),
    ]  # fmt: skip
    labels = load_dataset("shapes", n_train=1, n_test=60).test.labels.numpy()
    for record in records[1:3]:
        stored = shapes_run.predictions(evaluation_settings(record))
        assert stored is not None and stored.predicted.shape == (60,)
        assert 100 * stored.correct(labels).mean() == pytest.approx(record["accuracy"])
    # An AutoAttack record says how many images each attack ran on and left correct,
    # from the clean-correct ones down to the accuracy it reports.
    correct = round(records[3]["accuracy"] * 20 / 100)
    for record in records[4:]:
        assert [s["attack"] for s in record["stages"]] == list(AUTOATTACK_ORDER)
        left = [correct] + [s["n_robust_after"] for s in record["stages"]]
        assert [s["n_attacked"] for s in record["stages"]] == left[:-1]
        assert 100 * left[-1] / 20 == record["accuracy"] < records[3]["accuracy"]
    # ... it is a result, not a setting: found again by its settings, not recomputed.
    assert not any("stages" in evaluation_settings(r) for r in records)
    again = evaluate_run(shapes_run, configs[2:], n_images=60, progress=False, capped_images=20)
    assert again[1:] == records[4:]
    kinds = [r["kind"] for r in shapes_run.evaluations() if r.get("eps") == LARGE_EPS]
    assert sorted(kinds) == ["autoattack", "autoattack-fast"]
    seven = next(t for t in paper_tables(collect_runs(runs=[shapes_run]))
                 if t.number == 7 and t.setting["eps"] == LARGE_EPS)  # fmt: skip
    measures = list(seven.frame.index.get_level_values(1))
    assert measures == ["AutoAttack", "AutoAttack-fast", "masking flags"]


def test_a_record_stored_without_predictions_is_recomputed_with_them(shapes_run):
    """Runs attacked before per-image predictions were kept: re-running the attack
    command gives them, as `table --compare` tells the user to do."""
    from regionmix_utils.runs import evaluation_settings

    key = {**AttackConfig("fgsm", 4 / 255).settings(), "n_images": 30}
    shapes_run.add_evaluation({**key, "accuracy": -1.0, "seconds": 0.0})  # no predictions
    records = evaluate_run(shapes_run, [AttackConfig("fgsm", 4 / 255)], n_images=30,
                           progress=False)  # fmt: skip
    assert records[1]["accuracy"] >= 0
    assert shapes_run.predictions(evaluation_settings(records[1])) is not None
    again = evaluate_run(shapes_run, [AttackConfig("fgsm", 4 / 255)], n_images=30,
                         progress=False)  # fmt: skip
    assert again[1] == records[1]  # now reused


def test_table_7_and_the_masking_marks_in_table_3(shapes_run):
    configs = [AttackConfig("fgsm"), AttackConfig("pgd"), AttackConfig("pgd", steps=50),
               AttackConfig("apgd-ce"), AttackConfig("square", queries=100),
               AttackConfig("pgd", 64 / 255)]  # fmt: skip
    evaluate_run(shapes_run, configs, n_images=40, progress=False)
    runs = collect_runs(runs=[shapes_run])
    seven = [t for t in paper_tables(runs) if t.number == 7 and t.setting["eps"] == 8 / 255]
    assert len(seven) == 1
    frame, caption = seven[0].frame, seven[0].caption
    measures = list(frame.index.get_level_values(1))
    assert measures == ["FGSM", "PGD-10", "PGD-50", "APGD-CE", "Square-100", "masking flags"]
    assert "on 40 test images" in caption and "FGSM < PGD-10 - 2 points" in caption
    flags = masking_check(shapes_run.evaluations())["flags"]
    assert frame.iloc[-1, 0] == flags_text(flags)
    assert len(collect_evaluations(runs)) >= 7
    # A made-up FGSM record far below PGD marks the run in Table 3 and in Table 7.
    shapes_run.add_evaluation({"kind": "fgsm", "eps": 16 / 255, "n_images": 40,
                               "accuracy": 0.0, "seconds": 0.0})  # fmt: skip
    shapes_run.add_evaluation({"kind": "pgd", "eps": 16 / 255, "steps": 10,
                               "step_size": 4 / 255, "random_start": True, "seed": 0,
                               "n_images": 40, "accuracy": 50.0, "seconds": 0.0})  # fmt: skip
    tables = paper_tables(collect_runs(runs=[shapes_run]))
    three = next(t for t in tables if t.number == 3 and t.setting["eps"] == 8 / 255)
    assert three.frame.iloc[0, 0].endswith("†") and "† marks" in three.caption
    seven = next(t for t in tables if t.number == 7 and t.setting["eps"] == 8 / 255)
    assert seven.frame.iloc[-1, 0].startswith("1")


def test_cli_attack_sweeps_eps_and_reports_masking_flags(shapes_run, capsys):
    runs_dir = str(shapes_run.path.parents[2])
    command = ["attack", "--runs-dir", runs_dir, "--attack", "fgsm", "pgd", "--eps", "0",
               "2/255", "8/255", "--steps", "2", "--n-images", "30", "--device", "cpu",
               "--no-progress"]  # fmt: skip
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "(30 test images)" in out and "pgd-2 ε=2/255" in out and "masking flags" in out
    eps = {r["eps"] for r in shapes_run.evaluations() if r["kind"] == "pgd" and r["n_images"] == 30}
    assert eps == {0.0, 2 / 255, 8 / 255}
    for bad, message in [
        (["--eps=-1/255"], "eps must be in [0, 1]"),
        (["--eps", "2"], "eps must be in [0, 1]"),
    ]:
        assert main([*command[:3], "--attack", "pgd", *bad, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1
    for bad in (["--steps", "0"], ["--capped-images", "0"]):  # refused by the parser
        with pytest.raises(SystemExit):
            main([*command[:3], "--attack", "fgsm", *bad])
        assert f"argument {bad[0]}: must be an integer >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*command[:3], "--attack", "bim"])
    assert "invalid choice: 'bim'" in capsys.readouterr().err


def test_eps_curves_draw_fgsm_and_each_pgd_per_method():
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from regionmix_utils.viz import eps_curves

    rows = []
    for label, path, top in (("Mixup (k=1)", "a", 60.0), ("Region Mixup (k=2)", "b", 70.0)):
        for eps in (0, 2, 8):
            base = {"label_ce": label, "path": path, "eps": eps / 255, "n_images": 100}
            rows += [{**base, "kind": "fgsm", "accuracy": top - eps},
                     {**base, "kind": "pgd", "steps": 10, "accuracy": top - 7 * eps},
                     {**base, "kind": "clean", "accuracy": top}]  # fmt: skip
    figure = eps_curves(pd.DataFrame(rows))
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["Mixup (k=1)", "Region Mixup (k=2)"]
    lines = {line.get_label(): line.get_ydata().tolist() for line in axes[1].get_lines()}
    assert lines == {"FGSM": [70.0, 68.0, 62.0], "PGD-10": [70.0, 56.0, 14.0]}
    with pytest.raises(ValueError, match="no records of the attacks"):
        eps_curves(pd.DataFrame(rows[2:3]))
    # PGD at one ε on every image and at others on a sample: two series, not one curve.
    sample = [{"label_ce": "Mixup (k=1)", "path": "a", "eps": eps / 255, "n_images": 40,
               "kind": "pgd", "steps": 10, "accuracy": 50.0 - eps} for eps in (4, 64)]  # fmt: skip
    mixed = pd.DataFrame([r for r in rows if r["kind"] != "pgd" or r["eps"] == 2 / 255] + sample)
    axes = eps_curves(mixed).axes
    lines = {line.get_label(): line.get_xdata().tolist() for line in axes[0].get_lines()}
    assert lines == {"FGSM": [0, 2, 8], "PGD-10, 100 images": [2], "PGD-10, 40 images": [4, 64]}
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["0", "2", "4", "8", "64"]
