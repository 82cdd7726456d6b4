"""Model builders: ``build_x(**kwargs) -> keras.Model``. No Hydra, no MLflow."""

from seqlab.models.rnn_lm import build_rnn_lm
from seqlab.models.rnn_sequence import build_rnn_regressor, build_rnn_tagger

__all__ = ["build_rnn_lm", "build_rnn_regressor", "build_rnn_tagger"]
