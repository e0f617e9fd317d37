"""bench/quality_scenarios.py's summary: per-seed differences to the baseline, the sweep's picks.

The table is what the README's "never ships a worse model" claims rest on, so its arithmetic is
pinned on made-up seeds whose differences are known.
"""

import sys

import pytest

import bench_scripts


@pytest.fixture(scope="module")
def scenarios():
    sys.path.insert(0, bench_scripts.BENCH)  # the script imports its sibling ``quality``
    try:
        yield bench_scripts.load("quality_scenarios")
    finally:
        sys.path.remove(bench_scripts.BENCH)


def _seed(module, baseline: float, kd: float, sweep: float, chosen: str, pushed_kd: bool):
    def metrics(auc):
        return {"auc": auc, "gauc": auc - 0.1}

    return {scenario.name: {"teacher": metrics(0.8), "kd": metrics(kd),
                            "baseline": metrics(baseline),
                            "pushed": metrics(kd if pushed_kd else baseline),
                            "pushed_kd": pushed_kd, "sweep": metrics(sweep),
                            "sweep_chosen": chosen, "scored_auc": 0.9,
                            "repeats_clicks": scenario.name.startswith("memorising")}
            for scenario in module.SCENARIOS}


def test_the_table_shows_mean_and_spread_of_each_difference_and_the_sweeps_picks(scenarios):
    per_seed = [_seed(scenarios, 0.70, 0.71, 0.72, "kd_v1", True),
                _seed(scenarios, 0.72, 0.71, 0.72, "baseline", False)]
    text = scenarios.table(per_seed)
    assert text.startswith("DSSM no kd (baseline): AUC 0.7100 ± 0.0100")
    row = next(line for line in text.splitlines()
               if line.startswith("| memorising teacher, in-fold |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    # fixed kd: +0.01 and -0.01; pushed: kd (+0.01) then the baseline (0); sweep: +0.02 and 0
    assert cells[3] == "2/2 flagged"
    assert cells[4] == "+0.0000 ± 0.0100"
    assert cells[5] == "+0.0050 ± 0.0050"
    assert cells[7] == "1/2"
    assert cells[8] == "+0.0100 ± 0.0100" and cells[9] == "+0.0100 ± 0.0100"
    assert cells[10] == "kd_v1, baseline"
    assert len(text.splitlines()) == 4 + len(scenarios.SCENARIOS)  # line, blank, head, rule
