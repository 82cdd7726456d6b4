#!/usr/bin/env bash
# The vanishing-gradients study: cell x T x clipping on the adding problem,
# one Hydra multirun per T (the step budget shrinks as T grows), all logged to
# one MLflow store (experiment "vanishing_gradients").
#   bash experiments/vanishing_gradients/run_study.sh            # from the repo root
#   python experiments/vanishing_gradients/summarize.py          # table + plots
set -uo pipefail
cd "$(dirname "$0")/../.."
STORE=${STORE:-$PWD/experiments/vanishing_gradients/mlruns}
CELLS=${CELLS:-simple_rnn,lstm,gru,peephole_lstm}
COMMON=(experiment=adding "model/cell=$CELLS"
        model.hidden_size=64 optimizer.learning_rate=0.005
        callbacks.grad_time.max_metric_points=100 "tracking.store_dir=$STORE")

LENGTHS=" ${LENGTHS:-50 200 1000} "   # e.g. LENGTHS="200 1000" to run only those

# T = 50: 600 steps (3 epochs x 200), probes before training, at 300 and at the end
[[ $LENGTHS == *" 50 "* ]] && seqlab-train -m "${COMMON[@]}" "trainer.clipnorm=null,1.0" data.length=50 trainer.epochs=3 trainer.steps_per_epoch=200 \
    "callbacks.grad_time.steps=[0,300]" hydra.sweep.dir=multirun/vanishing_gradients/T50

# T = 200: 150 steps
[[ $LENGTHS == *" 200 "* ]] && seqlab-train -m "${COMMON[@]}" "trainer.clipnorm=null,1.0" data.length=200 trainer.epochs=3 trainer.steps_per_epoch=50 \
    data.validation_size=500 data.test_size=500 hydra.sweep.dir=multirun/vanishing_gradients/T200

# T = 1000: 30 steps (about 1-2 s per step on 2 CPU cores); diagnostics every 10 steps;
# clipping on only (time budget; 30 steps say little about clipping anyway)
[[ $LENGTHS == *" 1000 "* ]] && seqlab-train -m "${COMMON[@]}" trainer.clipnorm=1.0 data.length=1000 trainer.epochs=1 trainer.steps_per_epoch=30 \
    data.train_size=2000 data.validation_size=200 data.test_size=200 \
    callbacks.grad_norms.every_n_steps=10 callbacks.spectrum.every_n_steps=10 \
    hydra.sweep.dir=multirun/vanishing_gradients/T1000
