"""pifi_train: load a frozen LLM layer from a pifi artifact and fine-tune a small LM with it."""

from .frozen_layer import FrozenLayer, build_frozen_layer, load_layer
from .frozen_stack import FrozenStack
from .config import ProgressEvent, TrainConfig
from .model import ModelOptions, PifiModel
from .predict import load_run, predict
from .report import build_report
from .runner import RunResult, resume_training, run_training
from .tasks import TASKS, task_names

__all__ = ["FrozenLayer", "FrozenStack", "build_frozen_layer", "load_layer",
           "ModelOptions", "PifiModel", "ProgressEvent", "RunResult", "TASKS", "TrainConfig", "build_report",
           "load_run", "predict", "resume_training", "run_training", "task_names"]
