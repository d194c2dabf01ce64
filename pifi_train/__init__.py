"""pifi_train: load a frozen LLM layer from a pifi artifact and fine-tune a small LM with it."""

from .frozen_layer import FrozenLayer, build_frozen_layer, load_layer

__all__ = ["FrozenLayer", "build_frozen_layer", "load_layer"]
