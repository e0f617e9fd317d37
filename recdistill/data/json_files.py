"""Small JSON files (``recdistill.json``, ``metrics.json``, ``stats.json``, ``CHAMPION``), read
and written in one way wherever they live.

Writes are atomic, so a reader never sees half a file: a local file is written beside its
target and renamed over it; an object store shows an object only once its upload stream is
closed, so remote files are written in place. The text is indented and key-sorted, so
reruns give byte-identical files and diffs stay readable.

All IO goes through ``recdistill.data.filesystems``. Imports nothing else from recdistill.
"""

import json
import logging
import os
import uuid
from typing import Any

from recdistill.data import filesystems

logger = logging.getLogger(__name__)

_MISSING = object()


def read_json(uri: str, default: Any = _MISSING) -> Any:
    """Reads the JSON file at ``uri`` (local or remote).

    Args:
      uri: the file.
      default: returned when the file does not exist; without it a missing file raises.

    Raises:
      FileNotFoundError: no file at ``uri`` and no ``default``.
      ValueError: the file is not valid JSON (names the file, line and column).
    """
    if default is not _MISSING and not filesystems.exists(uri):
        return default
    with filesystems.open_input(uri) as f:
        text = f.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{uri}: not valid JSON at line {error.lineno}, column {error.colno}: "
                         f"{error.msg}. Rewrite the file, or delete it so it is "
                         "recreated.") from None


def write_json(uri: str, value: Any) -> None:
    """Writes ``value`` as JSON to ``uri``, atomically (see the module docstring).

    Values JSON cannot hold (dates, numpy scalars) are written as their ``str``.
    """
    data = json.dumps(value, indent=2, sort_keys=True, default=str).encode()
    if filesystems.is_remote(uri):
        with filesystems.open_output(uri) as f:
            f.write(data)
        return
    path = filesystems.localize(uri)
    staging = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
    try:
        with filesystems.open_output(staging) as f:
            f.write(data)
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)
    logger.debug("Wrote %s", uri)
