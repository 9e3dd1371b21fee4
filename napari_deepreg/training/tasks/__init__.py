"""How each learned family trains: one module per family, each registering its
:class:`~napari_deepreg.training.task.TrainTask`.

``training.task`` finds them by importing every module of this package. A task imports its
family from ``napari_deepreg.methods.<family>`` (network, configs, losses) and the training data
from ``napari_deepreg.data``; the methods never import a task.
"""
