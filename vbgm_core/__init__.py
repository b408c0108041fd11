"""vbgm: background music for video with the Controllable Music Transformer (CMT)."""

__version__ = "0.1.0"
