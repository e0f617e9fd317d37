"""Exported models: the SavedModel contract between training, soft labels, evaluation and push.

Every model recdistill trains (student, DCN/DeepFM teacher, GBDT teacher) is exported to
``<model_dir>/export/`` as a TF SavedModel with two signatures, so TF Serving, the Beam
soft-label job and the evaluator all call it the same way:

* ``serving_default`` takes one tensor per raw input column (named like the input field,
  shape ``[None]``) and returns a dict of outputs (``logits``, ``probs``, ...). Preprocessing
  lives inside the model, so callers pass raw columns.
* ``predict_examples`` takes ``examples``: serialized ``tf.Example`` protos, shape ``[None]``.

``recdistill.json`` beside ``saved_model.pb`` records what a reader needs without loading the
graph: model class, inputs and outputs, the config it was trained with, training metrics,
package versions and custom ops to load first (``["ydf"]`` for a GBDT teacher).

This module must not import ``kfp``.
"""

import dataclasses
import hashlib
import logging
import os
from typing import Any, Mapping

import numpy as np

from recdistill.data import filesystems, json_files

logger = logging.getLogger(__name__)

EXPORT_SUBDIR = "export"
SERVING_SIGNATURE = "serving_default"
EXAMPLES_SIGNATURE = "predict_examples"
EXAMPLES_INPUT = "examples"
METADATA_FILE = "recdistill.json"
SAVED_MODEL_FILE = "saved_model.pb"

#: Ops libraries a SavedModel may need, by the name recorded in ``custom_ops``.
_CUSTOM_OPS_MODULES = {"ydf": "ydf_tf"}


def export_dir(model_dir: str) -> str:
    """Where a model trained into ``model_dir`` is exported."""
    return filesystems.join(model_dir, EXPORT_SUBDIR)


def write_metadata(path: str, metadata: Mapping[str, Any]) -> None:
    """Writes ``recdistill.json`` into the export folder ``path``."""
    json_files.write_json(filesystems.join(path, METADATA_FILE), dict(metadata))


def read_metadata(path: str) -> dict:
    """Reads ``recdistill.json`` of the export folder ``path`` (empty dict when absent)."""
    return json_files.read_json(filesystems.join(path, METADATA_FILE), default={})


#: The files that make up the model proper; the digest leaves out metadata written beside them
#: (``recdistill.json``, push records, markers), which differ between copies of one model.
_DIGEST_ROOTS = (SAVED_MODEL_FILE, "variables", "assets")


def model_digest(uri: str) -> str:
    """A sha256 over the SavedModel's graph, variables and assets (``sha256:<hex>``).

    Evaluation records it in ``metrics.json`` and push checks it, so a verdict can only bless
    the exact model it scored: a copy of the same export has the same digest, a retrained or
    edited one does not.

    Args:
      uri: an export folder or a model_dir holding one, local or remote.
    """
    local = filesystems.localize(resolve_export(uri))
    digest = hashlib.sha256()
    for root in _DIGEST_ROOTS:
        top = os.path.join(local, root)
        paths = [top] if os.path.isfile(top) else sorted(
            os.path.join(d, n) for d, _, names in os.walk(top) for n in names)
        for path in paths:
            rel = os.path.relpath(path, local).replace(os.sep, "/")
            digest.update(rel.encode() + b"\0")
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


def load_custom_ops(names) -> None:
    """Imports the op libraries a SavedModel needs before ``tf.saved_model.load`` can read it.

    Runs in every process that loads such a model (Beam workers included), which is why the
    names travel in ``recdistill.json`` rather than being imported by the caller.
    """
    import importlib

    for name in names or ():
        if name not in _CUSTOM_OPS_MODULES:
            raise ValueError(f"unknown custom_ops entry {name!r} in {METADATA_FILE}; "
                             f"known: {sorted(_CUSTOM_OPS_MODULES)}")
        importlib.import_module(_CUSTOM_OPS_MODULES[name])


@dataclasses.dataclass
class ExportedModel:
    """A loaded export: call :meth:`predict` with raw columns.

    Attributes:
      uri: where the export was loaded from.
      inputs: input column name -> tf.DType expected by ``serving_default``.
      outputs: output names returned by ``serving_default``.
      metadata: contents of ``recdistill.json`` (empty when the export has none).
      local_path: a local folder holding the export's files (``uri`` itself when local; the
        download of a gs:// export, so readers of the files need not fetch it again).
    """

    uri: str
    inputs: dict
    outputs: list
    metadata: dict
    local_path: str
    _signature: Any = dataclasses.field(repr=False)
    _loaded: Any = dataclasses.field(repr=False)  # keeps the SavedModel's variables alive

    def check_columns(self, available) -> None:
        """Raises ValueError unless every input the model needs is among ``available``."""
        missing = sorted(set(self.inputs) - set(available))
        if missing:
            expected = ", ".join(f"{k}:{v.name}" for k, v in sorted(self.inputs.items()))
            raise ValueError(
                f"{self.uri}: the model needs input columns {missing} that the data lacks. "
                f"The model expects [{expected}]; the data has {sorted(available)}. "
                "Use the config the model was trained with, or add the columns.")

    def predict(self, columns: Mapping[str, Any]) -> dict:
        """Runs ``serving_default`` on one batch of raw columns.

        Args:
          columns: column name -> 1-D array-like (numpy, pyarrow or list), or a tensor of the
            dtype the model expects (fed as it is). Extra columns are ignored; numbers are
            cast to the dtype the model expects.

        Returns:
          Output name -> numpy array.

        Raises:
          ValueError: a needed column is missing or cannot be cast to the expected dtype.
        """
        import tensorflow as tf

        self.check_columns(columns)
        feed = {}
        for name, dtype in self.inputs.items():
            if isinstance(columns[name], tf.Tensor) and columns[name].dtype == dtype:
                feed[name] = columns[name]
                continue
            values = np.asarray(columns[name])
            if dtype == tf.string:
                if values.dtype.kind not in "OUS":
                    raise ValueError(f"{self.uri}: input column {name!r} must be strings, "
                                     f"got dtype {values.dtype}. Declare it as STRING.")
                feed[name] = tf.constant(values.astype(object))
            else:
                if values.dtype.kind not in "biuf":
                    raise ValueError(f"{self.uri}: input column {name!r} must be numeric "
                                     f"({dtype.name}), got dtype {values.dtype}. Check the "
                                     "field's input_type.")
                feed[name] = tf.constant(values.astype(dtype.as_numpy_dtype))
        out = self._signature(**feed)
        return {k: v.numpy() for k, v in out.items()}


def resolve_export(uri: str) -> str:
    """Returns the SavedModel folder for ``uri``: an export folder or a model_dir holding one.

    Pipelines pass model_dirs (a ``Model`` artifact), users pass export or pushed-version
    folders; both work everywhere a model is read.

    Raises:
      FileNotFoundError: neither ``uri`` nor ``uri/export`` holds a ``saved_model.pb``.
    """
    for candidate in (uri, export_dir(uri)):
        if filesystems.exists(filesystems.join(candidate, SAVED_MODEL_FILE)):
            return candidate
    raise FileNotFoundError(
        f"{uri}: no {SAVED_MODEL_FILE} here or in {EXPORT_SUBDIR}/. Pass a model_dir that "
        "recdistill trained into, its export folder, or a pushed version folder.")


def load_exported(uri: str) -> ExportedModel:
    """Loads the export at ``uri`` (export folder or model_dir, local or gs://).

    Raises:
      FileNotFoundError: no ``saved_model.pb`` at ``uri`` or ``uri/export``.
      ValueError: the SavedModel lacks the ``serving_default`` signature.
    """
    import tensorflow as tf

    uri = resolve_export(uri)
    local = filesystems.localize(uri)
    metadata = read_metadata(local)
    load_custom_ops(metadata.get("custom_ops"))
    try:
        loaded = tf.saved_model.load(local)
    except (tf.errors.NotFoundError, RuntimeError) as error:
        if "Op type not registered" not in str(error):
            raise
        raise ValueError(
            f"{uri}: the SavedModel uses ops this process has not loaded "
            f"({str(error).splitlines()[0][:200]}). "
            f"List their library in {METADATA_FILE} 'custom_ops' (known: "
            f"{sorted(_CUSTOM_OPS_MODULES)}), e.g. [\"ydf\"] for a YDF/GBDT teacher.") from error
    except (OSError, ValueError) as error:  # TF's words for a corrupt or empty saved_model.pb
        raise ValueError(
            f"{filesystems.join(uri, SAVED_MODEL_FILE)}: not a readable SavedModel "
            f"({str(error).splitlines()[0][:200]}). The file is corrupt or truncated: export "
            "the model again (recdistill train) or copy the whole export folder again.") from error
    if SERVING_SIGNATURE not in loaded.signatures:
        raise ValueError(f"{uri}: the SavedModel has signatures {sorted(loaded.signatures)} but "
                         f"no {SERVING_SIGNATURE!r}. Export it with recdistill (or add a "
                         "serving_default signature taking raw columns).")
    signature = loaded.signatures[SERVING_SIGNATURE]
    inputs = {name: spec.dtype for name, spec in signature.structured_input_signature[1].items()}
    outputs = sorted(signature.structured_outputs)
    return ExportedModel(uri=uri, inputs=inputs, outputs=outputs, metadata=metadata,
                         local_path=local, _signature=signature, _loaded=loaded)
