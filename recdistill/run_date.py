"""Run dates for daily retraining: parse the schedule time, fill date-partitioned URIs.

KFP substitutes ``dsl.PIPELINE_JOB_SCHEDULE_TIME_UTC_PLACEHOLDER`` with an RFC 3339 time on
recurring runs, but one-off runs on some backends and ``kfp.local`` pass the placeholder
through unresolved (``{{$.pipeline_job_schedule_time_utc}}``), and users type plain dates. So
the parser accepts any of these and falls back to today's UTC date, saying so in the log.
"""

import datetime
import logging
import re

logger = logging.getLogger(__name__)

#: What a URI template writes where the run date goes, e.g. ``gs://b/clicks/dt={date}/``.
DATE_FIELD = "{date}"
#: The day before the run date, e.g. yesterday's teacher ``gs://b/teacher/dt={previous_date}``
#: scoring today's rows: honest soft labels without cross-fitting.
PREVIOUS_DATE_FIELD = "{previous_date}"
DATE_FORMAT = "%Y-%m-%d"
_DATE_PREFIX = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})")


def resolve_run_date(raw: str, *, today: datetime.date | None = None) -> str:
    """Returns the run date as ``YYYY-MM-DD``.

    Args:
      raw: an RFC 3339 time (``2026-11-28T03:00:00Z``), a date (``2026-11-28`` or
        ``20261128``), an unresolved KFP placeholder, or empty.
      today: the fallback date (default: today in UTC).
    """
    match = _DATE_PREFIX.match((raw or "").strip())
    if match:
        try:
            return datetime.date(*map(int, match.groups())).strftime(DATE_FORMAT)
        except ValueError:
            raise ValueError(f"run_date {raw!r} is not a valid calendar date. "
                             "Pass YYYY-MM-DD or leave the schedule-time default.") from None
    fallback = today or datetime.datetime.now(datetime.timezone.utc).date()
    logger.warning("run_date %r is not a date (an unresolved schedule-time placeholder on a "
                   "one-off or local run?); using today's UTC date %s", raw, fallback)
    return fallback.strftime(DATE_FORMAT)


def partition_uri(template: str, run_date: str) -> str:
    """Fills ``{date}`` (and ``{previous_date}``, the day before) in a URI template; a template
    without them is returned unchanged."""
    if PREVIOUS_DATE_FIELD in template:
        day = datetime.datetime.strptime(run_date, DATE_FORMAT).date()
        previous = (day - datetime.timedelta(days=1)).strftime(DATE_FORMAT)
        template = template.replace(PREVIOUS_DATE_FIELD, previous)
    return template.replace(DATE_FIELD, run_date)
