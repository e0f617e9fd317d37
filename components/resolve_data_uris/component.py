"""Component: the run date and the date-partitioned data URIs of this run."""

from typing import NamedTuple

from kfp import dsl

from components.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def resolve_data_uris(
    run_date: str, train_data_template: str, eval_data_template: str,
) -> NamedTuple("RunUris", [("run_date", str), ("train_data", str), ("eval_data", str)]):
    """Fills ``{date}`` in the data URI templates with the run date.

    Args:
      run_date: the schedule time placeholder, an RFC 3339 time, a date, or '' (today, UTC).
      train_data_template: training table URI, e.g. ``gs://b/clicks/dt={date}/``.
      eval_data_template: evaluation table URI, same form.

    Returns:
      run_date: the resolved run date, YYYY-MM-DD.
      train_data: the training table URI with ``{date}`` filled in.
      eval_data: the evaluation table URI with ``{date}`` filled in.
    """
    import collections

    from recdistill import run_date as run_date_lib

    date = run_date_lib.resolve_run_date(run_date)
    uris = collections.namedtuple("RunUris", ["run_date", "train_data", "eval_data"])
    return uris(date, run_date_lib.partition_uri(train_data_template, date),
                run_date_lib.partition_uri(eval_data_template, date))
