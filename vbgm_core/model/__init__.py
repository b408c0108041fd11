"""The Controllable Music Transformer: configs, attention, model, checkpoints."""

from .cmt import CMT, GenerationState, masked_losses, set_cpu_generation_threads
from .config import ATTRIBUTES, VOCAB_SIZES, ModelConfig, TrainConfig, load_config

__all__ = ["CMT", "GenerationState", "masked_losses", "set_cpu_generation_threads", "ATTRIBUTES",
           "VOCAB_SIZES", "ModelConfig", "TrainConfig", "load_config"]
