"""Hyper-parameter search with pruning: current Optuna driven by seqlab, with
Hydra composing each trial's config and MLflow recording each trial as a
child run of the study's parent run.

    seqlab-search hparams_search=char_lm n_trials=20 [train overrides]
    seqlab-search hparams_search=char_lm workers=2

The parts: :mod:`~seqlab.search.space` (search space -> distributions),
:mod:`~seqlab.search.config` (the command line -> preset, base and trial
configs), :mod:`~seqlab.search.study` (storage, shared study, parent run),
:mod:`~seqlab.search.objective` (one trial), :mod:`~seqlab.search.driver`
(a worker's loop) and :class:`~seqlab.search.pruning.OptunaPruningCallback`
(the Keras callback that reports and prunes; usable in any ``model.fit``).
Optuna is an optional dependency: ``pip install seqlab[search]``.
"""

from seqlab.search.pruning import OptunaPruningCallback

__all__ = ["OptunaPruningCallback"]
