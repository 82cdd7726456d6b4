"""seqlab: a Keras 3 / TensorFlow laboratory for sequence and vision models.

The library is plain Keras: ``seqlab.layers`` (cells, recurrent stacks),
``seqlab.models`` (builders returning ``keras.Model``) and ``seqlab.metrics``
import neither Hydra nor MLflow. ``seqlab.experiment`` and ``seqlab.cli`` wire
them into tracked experiments.
"""

__version__ = "0.1.0"
