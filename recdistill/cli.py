"""The ``recdistill`` command: the pipeline's verbs on one machine, plus compile/submit/schedule.

Each verb is a thin shell over ``recdistill.steps`` (or ``pipelines`` for the Kubeflow verbs,
imported lazily so that ``recdistill train`` never loads kfp).
"""

import argparse
import json
import logging
import sys

logger = logging.getLogger("recdistill")


def _params(pairs) -> dict:
    """Parses ``key=value`` pipeline parameters (values that are JSON are decoded)."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"pipeline parameter {pair!r} must look like key=value, "
                             "e.g. student_config=gs://b/student.config")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _sample_data(args):
    from recdistill.data import sample

    rows = {"rows": args.rows} if args.rows else {}
    result = sample.write_sample_data(args.out, seed=args.seed, **rows)
    print(json.dumps({k: str(v) for k, v in vars(result).items()}, indent=2))


def _train(args):
    from recdistill import steps

    result = steps.train_model(args.config, args.model_dir, train_uri=args.train or "",
                               eval_uri=args.eval or "", warm_start=args.warm_start or "",
                               without_kd=args.without_kd, num_steps=args.num_steps,
                               mixed_precision=args.mixed_precision)
    print(json.dumps({"export_dir": result.export_dir, "steps": result.steps,
                      "metrics": result.metrics}, indent=2, default=str))


def _soft_labels(args):
    from recdistill import steps

    stats = steps.generate_soft_labels(args.teacher, args.config, args.input, args.output,
                                       runner=args.runner, beam_args=args.beam_args,
                                       max_bad_rows_fraction=args.max_bad_rows_fraction)
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

    run = local_run.run_local(args.workdir, student_config=args.student_config,
                              teacher_config=args.teacher_config, teacher_uri=args.teacher or "",
                              train_data=args.train, eval_data=args.eval,
                              thresholds=args.thresholds, num_steps=args.num_steps)
    print(local_run.format_summary(run))


def _compile(args):
    from pipelines import compile as compile_lib

    print(compile_lib.compile_pipeline(args.output or compile_lib.DEFAULT_OUTPUT, image=args.image,
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recdistill", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", required=True)

    p = verbs.add_parser("sample-data", help="write the synthetic sample dataset and configs")
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=None,
                   help="total impressions (default: the sample's 50,000); the last 20%% "
                        "(by time) form eval.csv")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_sample_data)

    p = verbs.add_parser("train", help="train the model a config describes (kd included)")
    p.add_argument("--config", required=True)
    p.add_argument("--train", help="file, folder of shards or glob (default: train_input_path)")
    p.add_argument("--eval", help="default: the config's eval_input_path")
    p.add_argument("--model-dir", help="default: the config's model_dir")
    p.add_argument("--warm-start", help="an export to initialise from (e.g. the champion)")
    p.add_argument("--without-kd", action="store_true", help="drop the kd blocks (baseline)")
    p.add_argument("--num-steps", type=int, default=0)
    p.add_argument("--mixed-precision", action="store_true")
    p.set_defaults(func=_train)

    p = verbs.add_parser("soft-labels", help="Beam job: add the teacher's soft labels",
                         epilog="Arguments after -- go to Beam, e.g. -- --project=p --region=r")
    p.add_argument("--teacher", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--config", required=True, help="the student's config")
    p.add_argument("--runner", default="DirectRunner")
    p.add_argument("--max-bad-rows-fraction", type=float, default=0.0)
    p.set_defaults(func=_soft_labels)

    p = verbs.add_parser("evaluate", help="metrics, report and blessing")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--teacher")
    p.add_argument("--champion")
    p.add_argument("--baseline")
    p.add_argument("--thresholds", help="thresholds file (YAML/JSON) or inline YAML/JSON, e.g. 'min_auc: 0.7'")
    p.set_defaults(func=_evaluate)

    p = verbs.add_parser("push", help="push a blessed model to <destination>/<version>/")
    p.add_argument("--model", required=True)
    p.add_argument("--destination", required=True)
    p.add_argument("--evaluation", help="the evaluate output folder (must say blessed)")
    p.add_argument("--keep", type=int, default=0)
    p.add_argument("--force", action="store_true", help="push even if not blessed (logged)")
    p.set_defaults(func=_push)

    p = verbs.add_parser("run", help="run the whole pipeline locally with kfp.local")
    p.add_argument("--workdir", default="runs/local")
    p.add_argument("--student-config")
    p.add_argument("--teacher-config")
    p.add_argument("--teacher", help="reuse this teacher export instead of training one")
    p.add_argument("--train")
    p.add_argument("--eval")
    p.add_argument("--thresholds")
    p.add_argument("--num-steps", type=int, default=0)
    p.set_defaults(func=_run)

    p = verbs.add_parser("compile", help="compile the pipeline to YAML")
    p.add_argument("--output", default=None, help="default: pipelines/kd_pipeline.yaml")
    p.add_argument("--image", default="", help="runtime (CPU) image for the pipeline steps")
    p.add_argument("--trainer-image", default="", help="GPU image for the training steps")
    p.set_defaults(func=_compile)

    for verb, func in (("submit", _submit), ("schedule", _schedule)):
        p = verbs.add_parser(verb, help=f"{verb} the compiled pipeline on a KFP endpoint")
        p.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8080")
        p.add_argument("--namespace")
        p.add_argument("--experiment", default="recdistill")
        p.add_argument("--pipeline-file", default=None)
        p.add_argument("params", nargs="*", help="pipeline parameters as key=value")
        p.set_defaults(func=func)
        if verb == "schedule":
            p.add_argument("--cron", required=True, help='6 fields, e.g. "0 0 3 * * *"')
            p.add_argument("--job-name", default="recdistill-daily")
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.beam_args = beam_args
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        status = args.func(args)
    except (ValueError, FileNotFoundError) as error:
        # Bad input: the message names the file/field and the fix; a traceback adds nothing
        # for the user (-v shows it).
        if args.verbose:
            raise
        print(f"recdistill {args.verb}: error: {error}", file=sys.stderr)
        return 2
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
