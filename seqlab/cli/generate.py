"""``seqlab-generate``: text from a trained language model (conf/generate.yaml).

    seqlab-generate model_path=model.keras prompt=ROMEO: strategy=top_p p=0.9
    seqlab-generate run_id=<mlflow run id> strategy=beam beam_width=5
    seqlab-generate run_id=<id> 'prompt="The cat sits on the"' strategy=greedy show_distribution=10

The model and its tokenizer come from a ``.keras`` file (+ ``tokenizer=``,
default: ``tokenizer.json`` beside it) or from an MLflow run: its logged
model ``runs:/<id>/model`` (MLflow Keras flavour; older runs: the artifact
``model.keras``) and its artifact ``tokenizer.json``, found in the store that
``seqlab-train`` writes to (``MLFLOW_TRACKING_URI``, else
``tracking.tracking_uri``, else ``sqlite:///<abs tracking.store_dir>/mlflow.db``).

A bad value prints ``error: <what and how to fix>`` and exits with status 2.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from seqlab.cli import quiet_tensorflow
from seqlab.errors import ConfigError, SeqlabError

MODEL_ARTIFACT = "model.keras"
TOKENIZER_ARTIFACT = "tokenizer.json"

# The CLI's option names for the API's (errors name what the user typed).
CLI_NAMES = {"top_k": "k", "top_p": "p", "num_return": "num_return", "end_token": "end_text"}


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------
def load_model(path) -> object:
    import keras

    import seqlab.layers  # noqa: F401  (registers seqlab's serializable layers)

    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"model_path={str(path)!r} does not exist; pass the model.keras of a run "
            "(model_path=path/to/model.keras) or run_id=<mlflow run id>"
        )
    if path.suffix != ".keras":
        raise ConfigError(
            f"model_path={str(path)!r} is not a .keras file; pass a model saved with model.save('x.keras')"
        )
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # a corrupt or foreign file: say which one
        raise ConfigError(f"could not load model_path={str(path)!r}: {err}") from err


def load_tokenizer_file(path):
    from seqlab.data.tokenizers import load_tokenizer

    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"tokenizer={str(path)!r} does not exist; pass the tokenizer.json saved with the "
            "model (tokenizer=path/to/tokenizer.json)"
        )
    return load_tokenizer(path)


def tracking_uri(tracking) -> str:
    """The store of ``seqlab-train``, without creating one if it is missing."""
    from seqlab.tracking.store import default_store_dir

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (tracking or {}).get("tracking_uri")
    if uri:
        return str(uri)
    store_dir = (tracking or {}).get("store_dir") or "mlruns"
    db = default_store_dir(store_dir) / "mlflow.db"
    if not db.is_file():
        raise ConfigError(
            f"no MLflow store at {db}; set tracking.store_dir=<folder holding mlflow.db> "
            "or MLFLOW_TRACKING_URI to the store the run was logged to"
        )
    return f"sqlite:///{db}"


def _find_artifact(client, run_id: str, name: str, path: str | None = None) -> str | None:
    """The path of the first artifact called ``name`` (root first, then folders)."""
    entries = client.list_artifacts(run_id, path)
    for entry in entries:
        if not entry.is_dir and Path(entry.path).name == name:
            return entry.path
    for entry in entries:
        if entry.is_dir:
            found = _find_artifact(client, run_id, name, entry.path)
            if found:
                return found
    return None


def load_run_model(run_id: str, uri: str, dst: str | Path):
    """``(model, tokenizer.json path)`` of MLflow run ``run_id``: the model
    logged with the MLflow Keras flavour (``runs:/<id>/model``), or the
    ``model.keras`` artifact of a run logged before seqlab used the flavour."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from seqlab.tracking.run import MODEL_NAME, load_logged_model

    client = MlflowClient(tracking_uri=uri)
    try:
        client.get_run(str(run_id))
    except MlflowException as err:
        raise ConfigError(
            f"MLflow run_id={run_id!r} not found in {uri}; copy the id from the MLflow UI "
            "(mlflow ui --backend-store-uri <uri>) or point tracking.store_dir / "
            "MLFLOW_TRACKING_URI at the store it was logged to"
        ) from err

    def download(artifact: str) -> Path:
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=str(run_id), artifact_path=artifact, dst_path=str(dst), tracking_uri=uri
            )
        )

    no_model = ConfigError(
        f"MLflow run {run_id!r} has no model ({MODEL_NAME} logged model or {MODEL_ARTIFACT} "
        "artifact); pick a run trained with tracking.log_model=true, or pass model_path= and tokenizer="
    )
    tokenizer_artifact = _find_artifact(client, str(run_id), TOKENIZER_ARTIFACT)
    if tokenizer_artifact is None:
        raise ConfigError(
            f"MLflow run {run_id!r} has no {TOKENIZER_ARTIFACT} artifact; pick a run of a text "
            "task, or pass model_path= and tokenizer="
        )
    tokenizer_file = download(tokenizer_artifact)
    legacy = _find_artifact(client, str(run_id), MODEL_ARTIFACT)
    if legacy is not None:
        return load_model(download(legacy)), tokenizer_file
    try:
        model = load_logged_model(
            f"runs:/{run_id}/{MODEL_NAME}", tracking_uri=uri, dst_path=str(Path(dst) / MODEL_NAME)
        )
    except (MlflowException, OSError) as err:
        raise no_model from err
    return model, tokenizer_file


def load_model_and_tokenizer(cfg, workdir: str | Path):
    """``(model, tokenizer)`` from ``model_path`` (+ ``tokenizer``) or ``run_id``."""
    model_path, tokenizer_path, run_id = (
        cfg.get("model_path"),
        cfg.get("tokenizer"),
        cfg.get("run_id"),
    )
    if model_path and run_id:
        raise ConfigError("give model_path= or run_id=, not both")
    if run_id:
        tracking = OmegaConf.to_container(cfg.tracking, resolve=True) if "tracking" in cfg else {}
        model, tokenizer_file = load_run_model(str(run_id), tracking_uri(tracking), workdir)
        return model, load_tokenizer_file(tokenizer_path or tokenizer_file)
    if model_path:
        model_file = Path(str(model_path)).expanduser()
        tokenizer_file = tokenizer_path or model_file.with_name(TOKENIZER_ARTIFACT)
    else:
        raise ConfigError(
            "no model given; pass model_path=path/to/model.keras (and tokenizer=...) "
            "or run_id=<mlflow run id>"
        )
    return load_model(model_file), load_tokenizer_file(tokenizer_file)


# ----------------------------------------------------------------------------
# Options and output
# ----------------------------------------------------------------------------
def check_config(cfg) -> dict:
    """Validate every option before loading anything; return plain values."""
    from seqlab.generation.beam import check_beam_options
    from seqlab.generation.sampling import (
        _is_int,
        check_positive_int,
        check_strategy,
        resolve_sampling,
    )

    strategy = check_strategy(cfg.strategy)
    options = {"strategy": strategy}
    if strategy == "beam":
        check_beam_options(
            cfg.beam_width, cfg.num_return, cfg.length_penalty, None, names=CLI_NAMES
        )
    else:
        resolve_sampling(
            strategy,
            cfg.temperature,
            cfg.k if strategy == "top_k" else None,
            cfg.p if strategy == "top_p" else None,
            names={"top_k": "k", "top_p": "p"},
        )
        check_positive_int(cfg.num_samples, "num_samples", 3)
    check_positive_int(cfg.max_new_tokens, "max_new_tokens", 500)
    if not _is_int(cfg.seed):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}; set e.g. seed=0")
    if not _is_int(cfg.show_distribution) or cfg.show_distribution < 0:
        raise ConfigError(
            f"show_distribution must be an integer >= 0, got {cfg.show_distribution!r}; "
            "set e.g. show_distribution=5 (0 turns it off)"
        )
    if not isinstance(cfg.prompt, str):
        raise ConfigError(f"prompt must be text, got {cfg.prompt!r}; quote it: 'prompt=\"...\"'")
    if cfg.prompt == "":
        raise ConfigError("the prompt is empty; give at least one character, e.g. prompt=ROMEO:")
    if cfg.on_unknown not in ("warn", "error"):
        raise ConfigError(f"on_unknown must be warn or error, got {cfg.on_unknown!r}")
    if cfg.jit_compile not in (True, False, "auto"):
        raise ConfigError(f"jit_compile must be true, false or auto, got {cfg.jit_compile!r}")
    return options


def _generate_and_print(cfg, model, tokenizer, out) -> None:
    from seqlab.generation import (
        beam_search_text,
        format_distribution,
        generate_texts,
        next_token_distribution,
    )

    common = {"on_unknown": cfg.on_unknown, "jit_compile": cfg.jit_compile}
    if cfg.show_distribution:
        dist = next_token_distribution(
            model, tokenizer, cfg.prompt, cfg.show_distribution, on_unknown=cfg.on_unknown
        )
        print(f"next token: {format_distribution(cfg.prompt, dist)}", file=out)
    if cfg.strategy == "beam":
        beams = beam_search_text(
            model,
            tokenizer,
            cfg.prompt,
            cfg.max_new_tokens,
            beam_width=cfg.beam_width,
            num_return=cfg.num_return,
            length_penalty=cfg.length_penalty,
            end_text=cfg.end_text,
            **common,
        )
        for i, beam in enumerate(beams, 1):
            print(
                f"=== beam {i}/{len(beams)}  log_prob={beam.log_prob:.4f}  score={beam.score:.4f} ===",
                file=out,
            )
            print(cfg.prompt + beam.text, file=out)
        return
    texts = generate_texts(
        model,
        tokenizer,
        cfg.prompt,
        cfg.max_new_tokens,
        num_samples=cfg.num_samples,
        seed=cfg.seed,
        strategy=cfg.strategy,
        temperature=cfg.temperature,
        top_k=cfg.k if cfg.strategy == "top_k" else None,
        top_p=cfg.p if cfg.strategy == "top_p" else None,
        **common,
    )
    detail = {
        "greedy": "",
        "temperature": f", temperature={cfg.temperature}",
        "top_k": f", k={cfg.k}, temperature={cfg.temperature}",
        "top_p": f", p={cfg.p}, temperature={cfg.temperature}",
    }[cfg.strategy]
    for i, text in enumerate(texts, 1):
        print(
            f"=== sample {i}/{len(texts)} (strategy={cfg.strategy}{detail}, seed={cfg.seed}) ===",
            file=out,
        )
        print(cfg.prompt + text, file=out)


def run(cfg: DictConfig, out=None, err=None) -> int:
    """Generate as ``cfg`` says; print samples to ``out``. Returns the exit status."""
    from seqlab.generation import encode_prompt

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        check_config(cfg)
        with tempfile.TemporaryDirectory(prefix="seqlab-generate-") as workdir:
            model, tokenizer = load_model_and_tokenizer(cfg, workdir)
            # Unknown prompt symbols: one warning, before the samples.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                encode_prompt(tokenizer, cfg.prompt, cfg.on_unknown)
            for w in caught:
                print(f"warning: {w.message}", file=err)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", ".*outside the vocabulary", UserWarning)
                _generate_and_print(cfg, model, tokenizer, out)
    except SeqlabError as error:
        print(f"error: {error}", file=err)
        return 2
    return 0


@hydra.main(version_base="1.3", config_path="pkg://seqlab.conf", config_name="generate")
def _app(cfg: DictConfig) -> None:
    status = run(cfg)
    if status:
        sys.exit(status)


def main() -> None:
    quiet_tensorflow()
    _app()


if __name__ == "__main__":
    main()
