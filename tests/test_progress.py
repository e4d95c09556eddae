"""Progress bars in headless notebook runs: one line per loop, nothing for inner loops."""

from __future__ import annotations

from regionmix_utils.progress import LineProgress, progress


def test_a_loop_prints_one_line_when_it_ends(capsys):
    for _ in LineProgress(range(5), desc="sweep"):
        pass
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep: 5/5 in ")


def test_inner_loops_and_disabled_bars_print_nothing(capsys):
    for _ in LineProgress(range(3), desc="batches", leave=False):
        pass
    for _ in LineProgress(range(3), desc="hidden", disable=True):
        pass
    assert capsys.readouterr().out == ""


def test_resumed_counts_and_postfix_as_tqdm_takes_them(capsys):
    bar = LineProgress(range(3, 5), desc="cifar10/region", initial=3, total=5)
    for _ in bar:
        bar.set_postfix(loss="0.123", acc=None)
    with LineProgress(total=10, desc="downloading") as download:
        download.update(4)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("cifar10/region: 5/5 in ") and out[0].endswith("(loss=0.123)")
    assert out[1].startswith("downloading: 4/10 in ")


def test_the_environment_picks_the_kind(monkeypatch):
    monkeypatch.setenv("REGIONMIX_HEADLESS", "1")
    assert isinstance(progress(range(2)), LineProgress)
    monkeypatch.delenv("REGIONMIX_HEADLESS")
    assert not isinstance(progress(range(2), disable=True), LineProgress)


def test_headless_explorers_show_their_figure_not_widgets(monkeypatch):
    import torch
    from matplotlib.figure import Figure

    from regionmix_utils.viz import MixingExplorer

    explorer = MixingExplorer(torch.rand(4, 3, 8, 8), torch.arange(4), list("abcd"))
    monkeypatch.setenv("REGIONMIX_HEADLESS", "1")
    assert isinstance(explorer.widget(), Figure)
    monkeypatch.delenv("REGIONMIX_HEADLESS")
    assert not isinstance(explorer.widget(), Figure)
