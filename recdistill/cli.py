"""The ``recdistill`` command: the pipeline's verbs on one machine, plus compile/submit/schedule.

Each verb is a thin shell over ``recdistill.steps`` (or ``pipelines`` for the Kubeflow verbs,
imported lazily so that ``recdistill train`` never loads kfp).

A failure the user can fix (bad input, a missing or unreadable file, a storage error) ends with
one ``recdistill <verb>: error: <message>`` on stderr and exit status 2; ``--debug`` (or
``RECDISTILL_DEBUG=1``) prints the traceback as well. Bad flag values are refused by argparse,
also with exit status 2, before anything runs.
"""

import argparse
import json
import logging
import os
import sys
import traceback

from recdistill.data import filesystems

logger = logging.getLogger("recdistill")


DEBUG_ENV = "RECDISTILL_DEBUG"


def _int_at_least(minimum: int):
    """An argparse type: an int >= ``minimum`` (a negative step count must not train 0 steps)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def _fraction(text: str) -> float:
    """An argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _variants(text: str) -> list:
    """An argparse type: the kd sweep's variants, a JSON list of objects."""
    from recdistill.kd import variants

    try:
        return variants.parse_variants(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _overrides(text: str) -> dict:
    """An argparse type: one kd variant, a JSON object (``--kd-variants`` holds a list)."""
    [overrides] = _variants(f"[{text}]")
    return overrides


def _candidate(text: str) -> tuple:
    """An argparse type: ``NAME=MODEL`` of one kd candidate."""
    name, sep, uri = text.partition("=")
    if not (sep and name and uri):
        raise argparse.ArgumentTypeError(f"expected NAME=MODEL (e.g. kd=runs/student), got "
                                         f"{text!r}")
    return name, uri


def _folder(text: str) -> str:
    """An argparse type: a folder to write into; an existing local file is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    try:
        remote = filesystems.is_remote(text)
    except ValueError:
        return text  # an unsupported scheme: the verb's own check names it and the fix
    if not remote and os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder. Pass a folder "
                                         "(it is created if missing)")
    return text


def _params(pairs) -> dict:
    """Parses ``key=value`` pipeline parameters (values that are JSON are decoded)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"pipeline parameter {pair!r} must look like key=value, "
                             "e.g. student_config=gs://b/student.config")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _sample_data(args):
    from recdistill.data import sample

    rows = {"rows": args.rows} if args.rows else {}
    result = sample.write_sample_data(args.out, seed=args.seed, overwrite=args.overwrite,
                                      **rows)
    print(json.dumps({k: str(v) for k, v in vars(result).items()}, indent=2))


def _train(args):
    from recdistill import steps

    result = steps.train_model(args.config, args.model_dir, train_uri=args.train or "",
                               eval_uri=args.eval or "", warm_start=args.warm_start or "",
                               without_kd=args.without_kd, num_steps=args.num_steps,
                               mixed_precision=args.mixed_precision,
                               exclude_fold=_excluded_fold(args),
                               kd_overrides=args.kd_overrides)
    print(json.dumps({"export_dir": result.export_dir, "steps": result.steps,
                      "metrics": result.metrics}, indent=2, default=str))


def _excluded_fold(args) -> tuple:
    """``(key, K, k)`` for ``train --cross-fit-fold k``, () without it."""
    if args.cross_fit_fold is None:
        if args.cross_fit_folds or args.cross_fit_key:
            raise ValueError("--cross-fit-folds/--cross-fit-key train a fold teacher only with "
                             "--cross-fit-fold k (the fold to leave out).")
        return ()
    if args.cross_fit_folds < 2 or args.cross_fit_fold >= args.cross_fit_folds:
        raise ValueError(f"--cross-fit-fold {args.cross_fit_fold} needs --cross-fit-folds K "
                         f">= 2 and > the fold, got {args.cross_fit_folds}. E.g. "
                         "--cross-fit-fold 0 --cross-fit-folds 3.")
    return (args.cross_fit_key or "", args.cross_fit_folds, args.cross_fit_fold)


def _soft_labels(args):
    from recdistill import steps

    teachers = args.teacher[0] if len(args.teacher) == 1 else args.teacher
    stats = steps.generate_soft_labels(teachers, args.config, args.input, args.output,
                                       runner=args.runner, beam_args=args.beam_args,
                                       max_bad_rows_fraction=args.max_bad_rows_fraction,
                                       cross_fit_key=args.cross_fit_key or "")
    print(json.dumps(stats, indent=2, default=str))


def _evaluate(args):
    from recdistill import steps

    result = steps.evaluate(args.model, args.data, args.config, args.out,
                            teacher_uri=args.teacher or "", champion_uri=args.champion or "",
                            baseline_uri=args.baseline or "", thresholds=args.thresholds or "")
    print(json.dumps({"blessed": result.blessed, "reasons": result.reasons,
                      "out": args.out}, indent=2))


def _push(args):
    from recdistill import steps

    result = steps.push_model(args.model, args.destination, evaluation_dir=args.evaluation or "",
                              keep=args.keep, force=args.force)
    if not result.pushed:
        print(f"recdistill push: not pushed: {result.reason}", file=sys.stderr)
        return 1
    print(result.version_uri)
    return 0


def _run(args):
    from pipelines import local_run

    from recdistill import selection

    selection.holdout_buckets(args.validation_fraction)  # a bad fraction fails before the run
    run = local_run.run_local(args.workdir, student_config=args.student_config,
                              teacher_config=args.teacher_config, teacher_uri=args.teacher or "",
                              train_data=args.train, eval_data=args.eval,
                              thresholds=args.thresholds, num_steps=args.num_steps,
                              cross_fit_folds=args.cross_fit_folds,
                              cross_fit_key=args.cross_fit_key or "",
                              kd_variants=args.kd_variants,
                              validation_fraction=args.validation_fraction,
                              validation_key=args.validation_key,
                              selection_metric=args.selection_metric,
                              validation_split=args.validation_split)
    print(local_run.format_summary(run))


def _select(args):
    from recdistill import steps

    names = [name for name, _ in args.candidate]
    if len(set(names)) != len(names):
        raise ValueError(f"--candidate names repeat: {names}. Name each kd student once.")
    result = steps.select_candidate(args.config, dict(args.candidate), args.baseline,
                                    args.validation, args.out, args.out, metric=args.metric)
    print(json.dumps({"chosen": result.chosen, "model": result.chosen_uri,
                      "reason": result.content["reason"], "out": args.out}, indent=2))


def _compile(args):
    from pipelines import compile as compile_lib

    output = os.path.abspath(args.output or compile_lib.DEFAULT_OUTPUT)
    if os.path.isdir(output):
        raise ValueError(f"--output {output} is a folder. Pass a file name, e.g. "
                         f"{os.path.join(output, 'kd_pipeline.yaml')}.")
    os.makedirs(os.path.dirname(output), exist_ok=True)
    print(compile_lib.compile_pipeline(output, image=args.image,
                                       trainer_image=args.trainer_image))


def _submit(args):
    from pipelines import client

    print(client.submit(args.host, _params(args.params), namespace=args.namespace,
                        experiment=args.experiment,
                        pipeline_file=args.pipeline_file or str(client.DEFAULT_OUTPUT)))


def _schedule(args):
    from pipelines import client

    print(client.schedule(args.host, args.cron, _params(args.params), namespace=args.namespace,
                          experiment=args.experiment,
                          pipeline_file=args.pipeline_file or str(client.DEFAULT_OUTPUT),
                          job_name=args.job_name))


def _debug_flags(parser: argparse.ArgumentParser, default) -> None:
    """``-v`` and ``--debug``, accepted before or after the verb."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="debug logging")
    parser.add_argument("--debug", action="store_true", default=default,
                        help=f"on an error, print the traceback too (or set {DEBUG_ENV}=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recdistill", description=__doc__.splitlines()[0])
    _debug_flags(parser, False)
    # After the verb the flags must not reset what was given before it.
    common = argparse.ArgumentParser(add_help=False)
    _debug_flags(common, argparse.SUPPRESS)
    verbs = parser.add_subparsers(dest="verb", required=True,
                                  help="one step of the pipeline, or a Kubeflow verb")

    def verb(name, **kwargs):
        return verbs.add_parser(name, parents=[common], **kwargs)

    data = "file, folder of shards or glob, local or gs://"
    p = verb("sample-data", help="write the synthetic sample dataset and configs")
    p.add_argument("--out", required=True, type=_folder, help="folder to write into")
    p.add_argument("--rows", type=_int_at_least(1), default=None,
                   help="total impressions (default: the sample's 50,000); the last 20%% "
                        "(by time) form eval.csv")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace files in --out whose content differs (an edited config, "
                        "another seed); without it they are refused and nothing is written")
    p.set_defaults(func=_sample_data)

    p = verb("train", help="train the model a config describes (kd included)")
    p.add_argument("--config", required=True, help="the model's pipeline config (file or gs://)")
    p.add_argument("--train", help=f"training data, {data} (default: train_input_path)")
    p.add_argument("--eval", help=f"eval data, {data} (default: the config's eval_input_path)")
    p.add_argument("--model-dir", type=_folder,
                   help="checkpoints and export/ go here (default: the config's model_dir)")
    p.add_argument("--warm-start", help="an export to initialise from (e.g. the champion)")
    p.add_argument("--without-kd", action="store_true", help="drop the kd blocks (baseline)")
    p.add_argument("--num-steps", type=_int_at_least(0), default=0,
                   help="training steps, >= 0 (default 0: the config's num_steps)")
    p.add_argument("--mixed-precision", action="store_true",
                   help="train in mixed_float16 (GPUs with tensor cores)")
    p.add_argument("--cross-fit-fold", type=_int_at_least(0), default=None, metavar="K",
                   help="train a cross-fitting fold teacher: leave out the rows of this fold "
                        "(read with a row filter, no copy); needs --cross-fit-folds")
    p.add_argument("--cross-fit-folds", type=_int_at_least(2), default=0, metavar="N",
                   help="number of folds, >= 2 (with --cross-fit-fold)")
    p.add_argument("--cross-fit-key", metavar="COLUMN",
                   help="the key column a row's fold is a hash of (default: the config's gauc "
                        "uid_field, else its kd session_name)")
    p.add_argument("--kd-overrides", type=_overrides, default=None, metavar="JSON",
                   help='one kd sweep variant applied to the kd blocks, e.g. \'{"loss_weight": '
                        '0.5}\' (what a kd_variants candidate trains with)')
    p.set_defaults(func=_train)

    p = verb("soft-labels", help="Beam job: add the teacher's soft labels",
             epilog="Arguments after -- go to Beam, e.g. -- --project=p --region=r")
    p.add_argument("--teacher", required=True, action="append",
                   help="the teacher: model_dir or export folder; repeat it once per fold "
                        "teacher for cross-fitted soft labels (each row scored by the teacher "
                        "that did not train on its fold)")
    p.add_argument("--cross-fit-key", metavar="COLUMN",
                   help="with fold teachers: the key column they must have split by "
                        "(default: the one their exports record)")
    p.add_argument("--input", required=True, help=f"the training rows, {data}")
    p.add_argument("--output", required=True, type=_folder,
                   help="folder for the labelled shards and stats.json")
    p.add_argument("--config", required=True, help="the student's config")
    p.add_argument("--runner", default="DirectRunner",
                   help="Beam runner (default DirectRunner, run in-process as FnApiRunner so it "
                        "never downloads the Prism binary); e.g. DataflowRunner, FlinkRunner")
    p.add_argument("--max-bad-rows-fraction", type=_fraction, default=0.0,
                   help="fraction of rows that may be rejected (dead letters) before the job "
                        "fails, in [0, 1] (default 0: fail on the first bad row)")
    p.set_defaults(func=_soft_labels)

    p = verb("evaluate", help="metrics, report and blessing")
    p.add_argument("--model", required=True, help="the candidate: model_dir or export folder")
    p.add_argument("--data", required=True, help=f"the eval table, {data}")
    p.add_argument("--config", required=True, help="the candidate's config")
    p.add_argument("--out", required=True, type=_folder,
                   help="folder for metrics.json and report.html")
    p.add_argument("--teacher", help="the teacher, for rank agreement with the student")
    p.add_argument("--champion", help="the model in production, for the max_*_drop thresholds")
    p.add_argument("--baseline", help="the student trained without kd, for the min_*_gain "
                                      "thresholds")
    p.add_argument("--thresholds",
                   help="thresholds file (YAML/JSON) or inline YAML/JSON, e.g. 'min_auc: 0.7'")
    p.set_defaults(func=_evaluate)

    p = verb("push", help="push a blessed model to <destination>/<version>/")
    p.add_argument("--model", required=True, help="the model: model_dir or export folder")
    p.add_argument("--destination", required=True, type=_folder,
                   help="the TF Serving base path, a folder or gs://bucket/path")
    p.add_argument("--evaluation", help="the evaluate output folder of this model (must say "
                                        "blessed and name this model's digest)")
    p.add_argument("--keep", type=_int_at_least(0), default=0,
                   help="keep only the newest N versions (default 0: keep all)")
    p.add_argument("--force", action="store_true",
                   help="push even if not blessed or not evaluated (logged)")
    p.set_defaults(func=_push)

    p = verb("run", help="run the whole pipeline locally with kfp.local")
    p.add_argument("--workdir", default="runs/local", type=_folder,
                   help="where data, outputs and the serving folder go (default runs/local)")
    p.add_argument("--student-config", help="the student's config (default: the bundled sample)")
    p.add_argument("--teacher-config", help="the teacher's config (default: the sample's)")
    p.add_argument("--teacher", help="reuse this teacher export instead of training one")
    p.add_argument("--train", help=f"training data, {data}")
    p.add_argument("--eval", help=f"eval data, {data}")
    p.add_argument("--thresholds", help="thresholds file or inline YAML/JSON")
    p.add_argument("--num-steps", type=_int_at_least(0), default=0,
                   help="training steps per model, >= 0 (default 0: the configs' num_steps)")
    p.add_argument("--cross-fit-folds", type=_int_at_least(0), default=0, metavar="N",
                   help="cross-fitted soft labels from N fold teachers, N >= 2 (default 0: "
                        "off, the teacher scores the rows it trained on)")
    p.add_argument("--cross-fit-key", metavar="COLUMN",
                   help="the fold key column (default: the student config's gauc uid_field, "
                        "else its kd session_name)")
    p.add_argument("--kd-variants", type=_variants, default=[],
                   help='the kd sweep: a JSON list of overrides of the kd blocks, each trained '
                        'beside the configured student, e.g. \'[{"loss_weight": 0.5}, '
                        '{"temperature": 2, "loss_type": "KL_DIVERGENCE_LOSS"}]\'')
    p.add_argument("--validation-fraction", type=_fraction, default=0.1,
                   help="training rows (by --validation-key) held out to choose among the kd "
                        "students and the baseline, in steps of 0.01 (default 0.1; 0: no "
                        "choice, the configured kd student goes on)")
    p.add_argument("--validation-split", choices=("user", "time"), default="user",
                   help="the holdout: user (whole users, by a hash of --validation-key; "
                        "default) or time (the latest training rows)")
    p.add_argument("--validation-key", default="",
                   help="the holdout's column: for user, the key column (default: the GAUC "
                        "uid_field, else a kd session column); for time, the time column "
                        "(default: row order, the table being in time order)")
    p.add_argument("--selection-metric", choices=("auc", "gauc"), default="auc",
                   help="what the choice maximises on the validation rows (default auc)")
    p.set_defaults(func=_run)

    p = verb("select", help="pick the best kd student or the baseline on validation rows")
    p.add_argument("--config", required=True, help="the student's config")
    p.add_argument("--candidate", required=True, action="append", type=_candidate,
                   help="NAME=MODEL of a kd student, repeated; the configured one named kd")
    p.add_argument("--baseline", required=True, help="the student trained without kd")
    p.add_argument("--validation", required=True,
                   help=f"held-out training rows none of them trained on, {data}")
    p.add_argument("--out", required=True, type=_folder,
                   help="folder for selection.json, selection.html and the chosen export")
    p.add_argument("--metric", choices=("auc", "gauc"), default="auc",
                   help="higher wins (default auc); a tie goes to the baseline")
    p.set_defaults(func=_select)

    p = verb("compile", help="compile the pipeline to YAML")
    p.add_argument("--output", default=None,
                   help="the YAML file; missing folders are created (default: "
                        "pipelines/kd_pipeline.yaml)")
    p.add_argument("--image", default="", help="runtime (CPU) image for the pipeline steps")
    p.add_argument("--trainer-image", default="", help="GPU image for the training steps")
    p.set_defaults(func=_compile)

    for name, func in (("submit", _submit), ("schedule", _schedule)):
        p = verb(name, help=f"{name} the compiled pipeline on a KFP endpoint")
        p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
        p.add_argument("--namespace", help="the Kubeflow namespace (default: the endpoint's)")
        p.add_argument("--experiment", default="recdistill",
                       help="the KFP experiment (default recdistill)")
        p.add_argument("--pipeline-file", default=None,
                       help="the compiled YAML (default: pipelines/kd_pipeline.yaml)")
        p.add_argument("params", nargs="*", help="pipeline parameters as key=value")
        p.set_defaults(func=func)
        if name == "schedule":
            p.add_argument("--cron", required=True, help='6 fields, e.g. "0 0 3 * * *"')
            p.add_argument("--job-name", default="recdistill-daily",
                           help="the recurring run's name (default recdistill-daily)")
    return parser


def _expected_errors() -> tuple:
    """Failure types the user can fix: bad input, missing or unreadable files, storage errors.

    TensorFlow's own errors (e.g. a checkpoint it cannot read) count when TF is loaded; other
    exception types are bugs and keep Python's traceback.
    """
    errors = [ValueError, OSError]
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "errors"):
        errors.append(tf.errors.OpError)
    return tuple(errors)


def _message(error: BaseException) -> str:
    # TF's OpError keeps the readable part in .message; str() prepends the op's context.
    text = str(error) if isinstance(error, (ValueError, OSError)) else getattr(error, "message", "")
    return text or str(error) or type(error).__name__


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.beam_args = beam_args
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    logging.basicConfig(level=logging.DEBUG if args.verbose or debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print(f"recdistill {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - sorted into expected and bugs right below
        if not isinstance(error, _expected_errors()):
            raise
        # The message names the file/field and the fix; the traceback is for --debug.
        if debug:
            traceback.print_exc()
        print(f"recdistill {args.verb}: error: {_message(error)}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
