"""Every command and option of the command line, as ``regionmix CMD --help`` shows them:
none of those in ``cli_options.json`` (taken before the options were made from the
declarations) is lost, and the choices come from the registries."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from regionmix_utils.cli import build_parser, main
from regionmix_utils.data import dataset_names, get_dataset
from regionmix_utils.evaluation.corruptions import SOURCES
from regionmix_utils.evaluation.registry import evaluation_kinds, get_evaluation

OPTIONS = json.loads((Path(__file__).parent / "cli_options.json").read_text())


def _help(capsys, *words: str) -> str:
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_every_command_is_there(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(OPTIONS) <= set(commands)
    assert all(command in _help(capsys) for command in OPTIONS)


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_every_option_of_a_command_is_still_there(command, capsys):
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", _help(capsys, command)))
    assert set(OPTIONS[command]) <= shown, sorted(set(OPTIONS[command]) - shown)


def test_download_offers_the_datasets_that_can_be_downloaded():
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["download"]
                  ._actions if a.dest == "datasets")  # fmt: skip
    fetched = [n for n in dataset_names() if get_dataset(n).download]
    assert list(action.choices) == [*fetched, *SOURCES]
    assert "shapes" not in action.choices and "cifar10" in action.choices


def test_evaluate_offers_every_registered_evaluation_it_can_compute(capsys):
    text = " ".join(_help(capsys, "evaluate").split())
    assert "none is built in" not in text
    for kind in evaluation_kinds():
        if get_evaluation(kind).compute is not None:
            assert build_parser().parse_args(["evaluate", "--kind", kind]).kind == kind
            assert f"{kind}: " in text


def test_a_config_field_is_an_option_with_its_type():
    args = build_parser().parse_args(["train", "--dataset", "shapes", "--method", "region",
                                      "--lr", "1/20", "--no-clean-ce", "--n-train", "5",
                                      "--milestones", "3", "5"])  # fmt: skip
    assert (args.lr, args.clean_ce, args.n_train, args.milestones) == (0.05, False, 5, [3, 5])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--dataset", "shapes", "--method", "region",
                                   "--n-train", "0"])  # fmt: skip
