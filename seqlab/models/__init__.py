"""Model builders: ``build_x(**kwargs) -> keras.Model``. No Hydra, no MLflow.

Sequence models (``averaging`` (the one-to-one baseline), ``rnn_lm``, ``rnn_sequence``, ``rnn_seq2seq``, ``transformer``,
``transformer_seq2seq``) and vision models (``mlp``, ``cnn``, ``resnet``,
``unet``), one module per architecture.
"""

from seqlab.models.averaging import build_averaging_classifier
from seqlab.models.cnn import build_cnn
from seqlab.models.mlp import build_mlp
from seqlab.models.resnet import build_plain_net, build_resnet
from seqlab.models.rnn_lm import build_rnn_lm
from seqlab.models.rnn_seq2seq import build_rnn_seq2seq
from seqlab.models.rnn_sequence import (
    build_rnn_classifier,
    build_rnn_conditioned_lm,
    build_rnn_forecaster,
    build_rnn_regressor,
    build_rnn_tagger,
)
from seqlab.models.transformer import build_transformer_classifier, build_transformer_lm
from seqlab.models.transformer_seq2seq import build_transformer_seq2seq
from seqlab.models.unet import build_unet

__all__ = [
    "build_averaging_classifier",
    "build_cnn",
    "build_mlp",
    "build_plain_net",
    "build_resnet",
    "build_rnn_classifier",
    "build_rnn_conditioned_lm",
    "build_rnn_forecaster",
    "build_rnn_lm",
    "build_rnn_regressor",
    "build_rnn_seq2seq",
    "build_rnn_tagger",
    "build_transformer_classifier",
    "build_transformer_lm",
    "build_transformer_seq2seq",
    "build_unet",
]
