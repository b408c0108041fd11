"""The Controllable Music Transformer: configs, attention, model, checkpoints.

The names below load on first use (PEP 562): ``model.header`` and ``model.config`` read a
model file's header without importing torch, and importing them runs this file.
"""

_EXPORTS = {"CMT": "cmt", "GenerationState": "cmt", "masked_losses": "cmt",
            "set_cpu_generation_threads": "cmt", "ATTRIBUTES": "config",
            "VOCAB_SIZES": "config", "ModelConfig": "config", "TrainConfig": "config",
            "load_config": "config"}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
