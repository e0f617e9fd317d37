"""Which validation holdout ranks the kd sweep's candidates like the eval table does?

The kd sweep (``recdistill.selection``) chooses among the kd students and the baseline on a
holdout of the training window; the eval table, which never chooses, says which choice was
right. Two holdouts (``validation_split``): ``user`` (10% of users, unseen) and ``time`` (the
latest 10% of the training rows, mostly known users, like eval.csv: later rows of the same
users). For each seed and holdout the sample's training table is split, a teacher trains on
the train part and labels it, and the baseline, the configured kd student and kd variants
train on it; every candidate is then scored on the holdout and on eval.csv.

Reported per holdout: how often the holdout's pick is eval's best candidate, the pairs of
candidates the holdout orders like eval (of all pairs), and the eval AUC lost by the pick
against eval's best. Teachers: ``weak`` (the case where the user holdout kept the baseline
although kd gained +0.008 on eval, README "When the teacher cannot help") and the shipped
early-stopped teacher (it stops on eval.csv here, as in ``bench/quality_scenarios.py``; the
pipeline's stops on the validation split). Models a killed run finished are reused.

Usage::

    .venv/bin/python bench/holdouts.py --seeds 2 [--work /tmp/holdouts]

Not run by pytest.
"""

import argparse
import itertools
import json
import os
import sys

import quality  # noqa: E402  (bench/, on sys.path when run as a script)
import quality_scenarios  # noqa: E402

#: The sweep's candidate beside the configured kd student (loss_weight 1).
VARIANTS = ({"loss_weight": 0.3},)
TEACHERS = (quality_scenarios.WEAK, quality_scenarios.EARLY_STOPPED)
SPLITS = ("user", "time")


def run_holdout(seed: int, split: str, kind: str, data, work_dir: str, clock) -> dict:
    """Trains every candidate with the ``kind`` teacher on one holdout's train part; returns
    candidate -> {"valid": auc, "eval": auc}."""
    from recdistill import config as config_lib
    from recdistill import evaluation, selection
    from recdistill.kd import variants as variants_lib

    root = os.path.join(work_dir, f"seed{seed}", split)
    paths = quality.Paths(root)
    student_cfg = config_lib.load_config(data.student_config)
    teacher_cfg = config_lib.load_config(data.teacher_config)
    train_uri, valid_uri = os.path.join(root, "train"), os.path.join(root, "valid")
    if not os.path.isdir(valid_uri):
        selection.split_validation(data.train_path, student_cfg, train_uri, valid_uri,
                                   split=split)
    train_rows = quality_scenarios._rows(train_uri)  # noqa: SLF001 - the same count
    clock.say(f"seed {seed} {split}: baseline")
    baseline = quality._trained(config_lib.without_kd(student_cfg), seed,  # noqa: SLF001
                                paths.model("baseline"), train_uri)
    clock.say(f"seed {seed} {split}: {kind} teacher, soft labels, kd students")
    cfg = quality_scenarios.teacher_config(kind, teacher_cfg, student_cfg, train_rows)
    teacher = quality._trained(cfg, seed, paths.model(kind), train_uri)  # noqa: SLF001
    labelled = paths.soft_labels(kind)
    if not os.path.isdir(labelled):
        quality_scenarios.soft_labels(teacher, student_cfg, train_uri, labelled)
    models = {"baseline": baseline}
    candidates = variants_lib.candidates(student_cfg, list(VARIANTS))
    for candidate in candidates:
        cfg = (variants_lib.apply_variant(student_cfg, candidate["overrides"],
                                          candidate["name"])
               if candidate["overrides"] else student_cfg)
        models[candidate["name"]] = quality._trained(  # noqa: SLF001
            cfg, seed, paths.model(f"{kind} {candidate['name']}"), labelled)
    valid = evaluation.compare_models(valid_uri, student_cfg, models)
    test = evaluation.compare_models(data.eval_path, student_cfg, models)
    out = {name: {"valid": valid[name]["auc"], "eval": test[name]["auc"]}
           for name in models}
    clock.say(f"seed {seed} {split} {kind}: " + json.dumps(out))
    return out


def agreement(scores: dict) -> dict:
    """The holdout's pick against eval's best, and the pairs ordered alike."""
    names = list(scores)
    # the sweep's rule: the best kd candidate, unless the baseline is not below it
    best_kd = max((n for n in names if n != "baseline"), key=lambda n: scores[n]["valid"])
    pick = "baseline" if scores["baseline"]["valid"] >= scores[best_kd]["valid"] else best_kd
    best = max(names, key=lambda n: scores[n]["eval"])
    pairs = list(itertools.combinations(names, 2))
    alike = sum((scores[a]["valid"] - scores[b]["valid"]) * (scores[a]["eval"]
                                                             - scores[b]["eval"]) > 0
                for a, b in pairs)
    return {"pick": pick, "eval_best": best, "right": pick == best,
            "pairs_alike": alike, "pairs": len(pairs),
            "regret": scores[best]["eval"] - scores[pick]["eval"],
            "pick_gain": scores[pick]["eval"] - scores["baseline"]["eval"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--work", default="/tmp/holdouts")
    args = parser.parse_args(argv)
    clock = quality.Clock()
    data, _ = quality.prepare_data("sample", os.path.join(args.work, "data"))
    results = []
    for seed, kind, split in itertools.product(range(args.seeds), TEACHERS, SPLITS):
        scores = run_holdout(seed, split, kind, data, args.work, clock)
        row = {"seed": seed, "split": split, "teacher": kind, "scores": scores,
               **agreement(scores)}
        results.append(row)
        print(json.dumps(row), flush=True)
    with open(os.path.join(args.work, "holdouts.json"), "w") as f:
        json.dump(results, f, indent=1)
    for split in SPLITS:
        rows = [r for r in results if r["split"] == split]
        print(f"{split}: pick = eval's best {sum(r['right'] for r in rows)}/{len(rows)}, "
              f"pairs ordered alike {sum(r['pairs_alike'] for r in rows)}/"
              f"{sum(r['pairs'] for r in rows)}, mean regret "
              f"{sum(r['regret'] for r in rows) / len(rows):.4f}, mean gain of the pick "
              f"{sum(r['pick_gain'] for r in rows) / len(rows):+.4f}")
    print(f"{clock.elapsed():.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
