"""Re-score a trained membrane U-Net on its held-out slices with every membrane metric.

    python experiments/vision/rescore_membranes.py CHECKPOINT.keras [--holdout 6] [--crop-size 256]
        [--store mlruns --run RUN_ID]     # also log test_pixel_error on that MLflow run

Rebuilds the held-out split the way ``data=membrane`` does (the last
``--holdout`` slices, scored as non-overlapping ``--crop-size`` tiles; the
same arguments the run trained with) and evaluates the checkpoint with
:func:`seqlab.data.membranes.membrane_metrics`: pixel accuracy, IoU and Dice
of the membrane class, and the ISBI challenge's pixel error (1 - the best
F-score of the cell interior over thresholds). For runs trained before
``pixel_error`` was logged.

It then says where the wrong pixels are: for a band of width ``w`` around
every edge of the true mask (pixels whose ``(2w+1)^2`` neighbourhood holds
both classes), the band's share of the pixels, its share of the errors, and
the pixel accuracy outside it. Errors packed into the one-pixel band are
about where a membrane's edge lies, not whether it is there.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

import seqlab.models  # noqa: F401  (registers seqlab layers for load_model)
from seqlab.data.membranes import build_membrane_data, membrane_metrics


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--holdout", type=int, default=6)
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--store", default=None, help="MLflow store folder of the run to log to")
    parser.add_argument("--run", default=None, help="MLflow run id to log test_* figures on")
    args = parser.parse_args(argv)
    bundle = build_membrane_data(batch_size=4, holdout=args.holdout, crop_size=args.crop_size,
                                 patches_per_epoch=4, mask_preview=0)
    model = keras.saving.load_model(args.checkpoint, compile=False)
    model.compile(loss=bundle.loss(), metrics=membrane_metrics())
    scores = model.evaluate(bundle.test, verbose=0, return_dict=True)
    for name, value in scores.items():
        print(f"test_{name} = {value:.4f}")
    for row in edge_bands(model, bundle.test):
        print("band width {width} px: {pixels:.1%} of the pixels hold {errors:.1%} of the errors; "
              "pixel accuracy outside it {outside:.4f}".format(**row))
    if args.run:
        from mlflow.tracking import MlflowClient

        from seqlab.tracking.store import resolve_tracking_uri

        uri = resolve_tracking_uri({"store_dir": args.store or "mlruns", "tracking_uri": None}, use_env=False)
        MlflowClient(uri).log_metric(args.run, "test_pixel_error", float(scores["pixel_error"]))
    return scores


def edge_bands(model, dataset, widths=(1, 2)) -> list[dict]:
    """Per band width: share of pixels, share of errors, and pixel accuracy outside the band."""
    from scipy import ndimage

    truth, wrong = [], []
    for x, y in dataset:
        membrane = np.asarray(y)[..., 0] > 0.5
        truth.append(membrane)
        wrong.append((np.asarray(model(x, training=False))[..., 0] > 0) != membrane)
    truth, wrong = np.concatenate(truth), np.concatenate(wrong)
    rows = []
    for w in widths:
        size = (1, 2 * w + 1, 2 * w + 1)  # per tile, never across tiles
        band = ndimage.maximum_filter(truth, size=size) != ndimage.minimum_filter(truth, size=size)
        rows.append({"width": w, "pixels": band.mean(), "errors": wrong[band].sum() / max(wrong.sum(), 1),
                     "outside": 1.0 - wrong[~band].mean()})
    return rows


if __name__ == "__main__":
    main()
