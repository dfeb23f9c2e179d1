"""Monitoring: peak memory, the run summary (log + JSON in output_dir), the Trainer callback that
fills it, and the loss plot (training_loss.png in output_dir, `plot_losses`)."""

from __future__ import annotations

import json
import logging
import math
import os
import time

from transformers import TrainerCallback

from medtrain.runtime.measure import peak_rss_mb

logger = logging.getLogger(__name__)

SUMMARY_FILE = "run_summary.json"


class RunSummary:
    """Collects the numbers of a run and writes them once at the end."""

    def __init__(self, output_dir: str, is_main: bool = True):
        self.output_dir = output_dir
        self.is_main = is_main
        self.start = time.time()
        self.data: dict = {}

    def update(self, **values) -> None:
        self.data.update(values)

    def finish(self) -> dict:
        self.data["seconds"] = round(time.time() - self.start, 2)
        self.data["peak_memory_mb"] = peak_rss_mb()
        if self.is_main:
            os.makedirs(self.output_dir, exist_ok=True)
            path = os.path.join(self.output_dir, SUMMARY_FILE)
            with open(path, "w") as fh:
                json.dump(self.data, fh, indent=1, default=str)
            lines = [f"  {k}: {v}" for k, v in self.data.items() if not isinstance(v, dict)]
            for k, v in self.data.items():
                if isinstance(v, dict):
                    lines.append(f"  {k}: " + ", ".join(f"{a}={b}" for a, b in v.items()))
            logger.info("Run summary (also in %s):\n%s", path, "\n".join(lines))
        return self.data


class SummaryCallback(TrainerCallback):
    """Times training and records losses, perplexity and throughput into the RunSummary."""

    def __init__(self, summary: RunSummary, token_counter, perplexity: bool = True):
        self.summary = summary
        self.tokens = token_counter
        self.perplexity = perplexity  # False: the eval loss is not a language-model loss (preference training)
        self.t0 = None
        self.first_loss = None
        self.last_loss = None

    def on_train_begin(self, args, state, control, **kw):
        self.t0 = time.time()

    def on_log(self, args, state, control, logs=None, **kw):
        if logs and "loss" in logs:
            if self.first_loss is None:
                self.first_loss = logs["loss"]
            self.last_loss = logs["loss"]
        if logs and "eval_loss" in logs and self.perplexity:
            ppl = round(math.exp(min(50.0, logs["eval_loss"])), 4)
            logs["eval_perplexity"] = ppl
            if state.log_history:  # the Trainer recorded these logs before calling back
                state.log_history[-1]["eval_perplexity"] = ppl

    def on_train_end(self, args, state, control, **kw):
        secs = time.time() - (self.t0 or time.time())
        slots, targets = self.tokens()
        self.summary.update(train_seconds=round(secs, 2), global_step=state.global_step,
                            first_logged_loss=self.first_loss, last_logged_loss=self.last_loss,
                            train_tokens_this_rank=slots, train_target_tokens_this_rank=targets,
                            train_tokens_per_second_this_rank=round(slots / secs, 1) if secs > 0 else None)


class MemoryGuard:
    """Watches the machine's memory (psutil): 'high' above `threshold` (fraction used), 'stop' above
    `stop`, so callers can free what they can, and stop with a clear message instead of being
    killed by the OS."""

    KNOBS = ("--shuffle_buffer_size (streaming window), --num_proc (tokenizer processes), "
             "--dataloader_num_workers, --per_device_train_batch_size, --block_size")

    def __init__(self, threshold: float = 0.9, stop: float = 0.98):
        self.threshold, self.stop = threshold, stop

    @staticmethod
    def used_fraction() -> float:
        import psutil

        vm = psutil.virtual_memory()
        return 1 - vm.available / vm.total

    def check(self) -> str:
        used = self.used_fraction()
        return "stop" if used >= self.stop else "high" if used >= self.threshold else "ok"

    def numbers(self) -> str:
        import psutil

        vm = psutil.virtual_memory()
        rss = psutil.Process().memory_info().rss
        return (f"{100 * (1 - vm.available / vm.total):.1f}% of {vm.total / 2**30:.1f} GiB used, "
                f"{vm.available / 2**30:.2f} GiB available, this process {rss / 2**20:,.0f} MiB")

    def message(self, who: str) -> str:
        return (f"memory guard: {who} stopped the run before the system ran out of memory ({self.numbers()}; "
                f"stop threshold {self.stop:.0%}). Lower what holds memory: {self.KNOBS}; or raise "
                "--memory_guard_stop if this is expected.")


class MemoryGuardCallback(TrainerCallback):
    """Logs resident memory of this rank and the machine's available memory at each logging step;
    above the threshold it collects garbage and warns once; above the stop level it ends the run
    with a clear message."""

    def __init__(self, guard: MemoryGuard, rank: int = 0):
        self.guard, self.rank, self.warned = guard, rank, False

    def on_log(self, args, state, control, logs=None, **kw):
        import gc

        import psutil

        vm = psutil.virtual_memory()
        if logs is not None:
            numbers = {"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
                       "mem_available_gb": round(vm.available / 2**30, 2)}
            logs.update(numbers)
            if state.log_history:  # the Trainer recorded these logs before calling back
                state.log_history[-1].update(numbers)
        level = self.guard.check()
        if level == "stop":
            from medtrain.errors import MemoryGuardError

            raise MemoryGuardError(self.guard.message(f"rank {self.rank} at step {state.global_step}"))
        if level == "high":
            gc.collect()
            if not self.warned:
                logger.warning("memory above %.0f%%: %s. Freed what could be freed; if it keeps growing, lower "
                               "%s", 100 * self.guard.threshold, self.guard.numbers(), self.guard.KNOBS)
                self.warned = True


LOSS_PLOT = "training_loss.png"


def loss_series(log_history: list) -> tuple[list, list]:
    """([(step, training loss)], [(step, eval loss)]) from the Trainer's log history."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h["eval_loss"]) for h in log_history if "eval_loss" in h and "step" in h]
    return train, evals


def plot_losses(log_history: list, output_dir: str) -> str | None:
    """Write output_dir/training_loss.png: the logged training loss by step, and the evaluation loss
    when the run evaluated (as LLaMA-Factory's --plot_loss). Returns its path, or None when nothing
    was logged (e.g. an evaluation-only run). Uses matplotlib's object API (no pyplot: no global
    state, safe in worker processes)."""
    train, evals = loss_series(log_history)
    if not train:
        logger.info("No training loss was logged: no %s", LOSS_PLOT)
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([s for s, _ in train], [v for _, v in train], label="training loss", color="tab:blue")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o-", label="eval loss", color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(f"loss ({os.path.basename(os.path.normpath(output_dir))})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOSS_PLOT)
    fig.savefig(path, dpi=100)
    logger.info("Loss plot written to %s", path)
    return path
