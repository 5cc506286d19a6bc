"""Model weights, prepared offline by ``python -m ml.weights`` into the model cache.

- :mod:`ml.weights.cache`: where the cache is, atomic writes and checksummed files (torch-free);
- :mod:`ml.weights.onnx_models`: the ONNX files the service loads, checked on load (torch-free);
- :mod:`ml.weights.tf_graph`: a reader of TensorFlow ``GraphDef`` protobufs (numpy only);
- :mod:`ml.weights.facenet_casia`: the CASIA-WebFace FaceNet graph mapped onto facenet-pytorch's model;
- :mod:`ml.weights.state_dicts`: torch state dicts in checksummed safetensors files;
- :mod:`ml.weights.torch_models`: the PyTorch networks (export, parity tests, benchmarks);
- :mod:`ml.weights.onnx_export`: PyTorch -> ONNX export;
- :mod:`ml.weights.cli`: the command line.

Only the first two may be imported by the service: the others need torch, which the runtime does not install.
"""
