"""A self-supervised encoder of our own: a small ViT over log-mel patches, pretrained without labels.

``frontend`` (waveform -> log-mel, as convolutions so the whole encoder exports to one graph), ``model``
(the ViT and its attention), ``pooling`` (tokens -> embedding), ``objectives`` (masked reconstruction, JEPA,
VICReg), ``data`` (the cached log-mel windows of a competition's audio), ``pretrain`` (the resumable training
loop), ``artifacts`` (the encoder files: weights, config, TFLite and ONNX graphs, parity), ``tflite`` (the same
forward pass in TensorFlow, for the TFLite graph) and ``attention`` (per-head and rolled-out maps, call masks).
Torch is imported only by the modules that train or export; the encoder itself runs on the TFLite runtime.
"""
