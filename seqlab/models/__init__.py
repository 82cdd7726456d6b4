"""Model builders: ``build_x(**kwargs) -> keras.Model``. No Hydra, no MLflow."""

from seqlab.models.language import build_rnn_lm

__all__ = ["build_rnn_lm"]
