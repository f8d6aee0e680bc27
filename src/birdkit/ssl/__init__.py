"""A self-supervised encoder of our own: a small ViT over log-mel patches, pretrained without labels.

``frontend`` (waveform -> log-mel, as convolutions so the whole encoder exports to one ONNX graph), ``model``
(the ViT and its attention), ``objectives`` (masked reconstruction, JEPA, VICReg), ``data`` (the cached
log-mel windows of a competition's audio), ``pretrain`` (the resumable training loop), ``artifacts`` (the
encoder files: weights, config, ONNX graph, parity) and ``attention`` (per-head and rolled-out maps, call masks).
Torch is imported only by the modules that train or export; the encoder itself runs on onnxruntime.
"""
