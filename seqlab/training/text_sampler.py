"""A callback that shows what a language model writes while it trains."""

from __future__ import annotations

from seqlab.training.context import RunCallback


class TextSampler(RunCallback):
    """Generates text from a fixed prompt every ``every_n_epochs`` epochs and
    once at the end of the run; appends each sample to ``samples.txt`` in the
    run's folder, logs that file, and returns the final sample for the run to
    print.

    The text data builder makes it (``data.sampler`` options; ``data.sampler:
    null`` turns it off), since it needs the tokenizer the data was encoded
    with.

    Args:
        tokenizer: encodes the prompt and decodes the generated ids.
        prompt: the text generation starts from.
        length: new tokens per sample.
        temperature, strategy, top_k, top_p: the decoding options of
            :func:`seqlab.generation.generate_text`.
        every_n_epochs: sample after every N epochs (0: only at the end).
        seed: the sampling seed, the same for every sample (samples differ by
            the weights alone).
    """

    def __init__(
        self,
        tokenizer,
        prompt: str = "\n",
        length: int = 300,
        temperature: float = 0.8,
        every_n_epochs: int = 1,
        seed: int = 0,
        strategy: str = "temperature",
        top_k: int | None = None,
        top_p: float | None = None,
    ):
        super().__init__()
        self.tokenizer = tokenizer
        self.prompt = prompt
        self.length = int(length)
        self.every_n_epochs = int(every_n_epochs)
        self.seed = int(seed)
        self.options = {"strategy": strategy, "temperature": temperature, "top_k": top_k, "top_p": top_p}
        self.samples: list[tuple[str, str]] = []

    def sample(self) -> str:
        from seqlab.generation import generate_text

        options = {k: v for k, v in self.options.items() if v is not None}
        return generate_text(
            self.model, self.tokenizer, self.prompt, max_new_tokens=self.length, seed=self.seed, **options
        )

    def _record(self, label: str) -> str:
        text = self.sample()
        self.samples.append((label, text))
        if self.context is not None:
            path = self.context.output_dir / "samples.txt"
            with path.open("a", encoding="utf-8") as f:
                f.write(f"=== {label} ===\n{self.prompt}{text}\n\n")
            self.context.log_artifact(path, None)
        return text

    def on_epoch_end(self, epoch, logs=None):
        if self.every_n_epochs > 0 and (epoch + 1) % self.every_n_epochs == 0:
            self._record(f"epoch {epoch + 1}")

    def on_run_end(self) -> str:
        text = self._record("final")
        return f"\n--- sample ({self.prompt!r} + {len(text)} generated) ---\n{self.prompt}{text}\n"
