"""TF Serving's container for exported runs: ``python -m serving.tfserving RUN_DIR ... --out DIR``
builds a model base folder (each SavedModel graph as ``<graph>/1/``, ``models.config``, the
batching parameters) to mount at ``/models`` in the image of ``serving/tfserving/Dockerfile``.

Standard library only: it reads ``manifest.json`` and copies files, so it runs where TensorFlow
is not installed.
"""
