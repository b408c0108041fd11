"""Making a model: MIDI folders to a dataset (``data``), training-time augmentation
(``augment``), the resumable training loop (``train``)."""
