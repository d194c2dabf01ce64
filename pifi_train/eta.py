"""A time-based estimate of the work left in several training runs, evaluation included.

The trainer reports steps, epoch ends and run ends (:class:`~pifi_train.config.ProgressEvent`), but
nothing while it evaluates, which on a CPU can take a minute. :class:`RunsEta` turns the plan (runs ×
epochs × steps; examples evaluated after each epoch and at the end of a run) and the speeds measured
so far into the share done and the seconds left AT ANY MOMENT, so a front end can redraw an overall
line between events. Pure (no I/O; the clock is injected).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

EVAL_SHARE = 1 / 3  # before any evaluation is timed: an example's forward pass ≈ 1/3 of its training step


@dataclass(frozen=True)
class WorkPlan:
    """What the runs will do, all runs alike."""

    runs: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    validation_examples: int  # evaluated after every epoch
    test_examples: int  # evaluated once at the end of a run (every test set together)


@dataclass(frozen=True)
class EtaSnapshot:
    fraction: float  # of the whole plan, 0..1
    elapsed: float  # seconds since the estimator started
    remaining: float | None  # seconds; None until a training step has been timed
    phase: str  # starting | training | evaluating | testing | done
    run: int  # 1-based index of the current run


def _ema(old: float | None, new: float, weight: float = 0.2) -> float:
    return new if old is None else (1 - weight) * old + weight * new


class RunsEta:
    """Feed it every progress event (:meth:`update`); ask :meth:`snapshot` whenever a line is drawn."""

    def __init__(self, plan: WorkPlan, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.clock = clock
        self.started = self.phase_start = self._last = clock()
        self.phase = "starting"
        self.run = 0
        self.runs_done = 0
        self.epochs_done = 0  # in the current run
        self.step = 0  # in the current epoch
        self.step_seconds: float | None = None
        self.eval_seconds: float | None = None  # per example
        self.setup_seconds: float | None = None  # run start -> first step (model load, tokenization)

    def update(self, event: Any) -> None:
        now, kind = self.clock(), event.kind
        if kind == "run_start":
            self.run += 1
            self.epochs_done = self.step = 0
            self._enter("starting", now)
        elif kind == "epoch_start":
            if self.phase == "starting":
                self.setup_seconds = _ema(self.setup_seconds, now - self.phase_start, 0.5)
            self.step = 0
            self._enter("training", now)
        elif kind == "step":
            if self.phase == "training":
                per_step = (now - self._last) / max(1, event.step - self.step)
                self.step_seconds = _ema(self.step_seconds, per_step)
            self.step, self._last = event.step, now
            if event.step >= event.steps:
                self._enter("evaluating", now)
        elif kind == "epoch_end":
            self._timed_eval(now, self.plan.validation_examples)
            self.epochs_done += 1
            self._enter("testing" if self.epochs_done >= self.plan.epochs else "starting-epoch", now)
        elif kind == "run_end":
            self._timed_eval(now, self.plan.test_examples)
            self.runs_done += 1
            self.epochs_done = self.step = 0
            self._enter("done" if self.runs_done >= self.plan.runs else "starting", now)

    def _enter(self, phase: str, now: float) -> None:
        self.phase, self.phase_start, self._last = phase, now, now

    def _timed_eval(self, now: float, examples: int) -> None:
        if self.phase in ("evaluating", "testing") and examples:
            self.eval_seconds = _ema(self.eval_seconds, (now - self.phase_start) / examples, 0.5)

    def snapshot(self, now: float | None = None) -> EtaSnapshot:
        now = self.clock() if now is None else now
        p, elapsed = self.plan, now - self.started
        phase = "training" if self.phase == "starting-epoch" else self.phase
        if self.step_seconds is None:
            return EtaSnapshot(0.0, elapsed, None, phase, max(1, self.run))
        step = self.step_seconds
        evaluate = self.eval_seconds if self.eval_seconds is not None else step / p.batch_size * EVAL_SHARE
        setup = self.setup_seconds or 0.0
        per_epoch = p.steps_per_epoch * step + p.validation_examples * evaluate
        per_run = setup + p.epochs * per_epoch + p.test_examples * evaluate
        done = self.runs_done * per_run + self.epochs_done * per_epoch + (setup if self.run > self.runs_done else 0.0)
        in_phase = now - self.phase_start
        if self.phase == "starting":
            done += min(in_phase, setup) - setup  # setup not finished yet
        elif self.phase in ("training", "starting-epoch"):
            done += self.step * step
        elif self.phase == "evaluating":
            done += p.steps_per_epoch * step + min(in_phase, p.validation_examples * evaluate)
        elif self.phase == "testing":
            done += min(in_phase, p.test_examples * evaluate)
        total = p.runs * per_run
        done = min(max(done, 0.0), total)
        return EtaSnapshot(done / total if total else 1.0, elapsed, total - done, phase, max(1, self.run))


def format_eta(snap: EtaSnapshot) -> str:
    """``"37% · 3:12 elapsed · ~5:40 left"`` (the left part only once a step has been timed)."""
    def clock(seconds: float) -> str:
        seconds = int(round(seconds))
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 \
            else f"{seconds // 60}:{seconds % 60:02d}"

    left = f" · ~{clock(snap.remaining)} left" if snap.remaining is not None else ""
    return f"{100 * snap.fraction:.0f}% · {clock(snap.elapsed)} elapsed{left}"
