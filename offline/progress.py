"""Progress of an offline run: a bar (rows/s, ETA) on a terminal, otherwise a log line every
`every` rows, each prefixed with the shard so that N pods' logs read apart."""

from __future__ import annotations

import sys
import time


def eta_text(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(label: str, done: int, total: int | None, rate: float) -> str:
    """`part 1/4: 1200/5000 rows (24.0%), 300.0 rows/s, ETA 0:00:12`."""
    if total:
        left = max(total - done, 0)
        eta = eta_text(left / rate) if rate > 0 else "?"
        return f"{label}: {done}/{total} rows ({done / total:.1%}), {rate:.1f} rows/s, ETA {eta}"
    return f"{label}: {done} rows, {rate:.1f} rows/s"


class Progress:
    def __init__(
        self, label: str, total: int | None, initial: int, bar: bool, every: int, stream=None
    ):
        self.label, self.total, self.done, self.every = label, total, initial, every
        self.stream = stream or sys.stderr
        self.started, self.initial = time.perf_counter(), initial
        self.next_log = (initial // every + 1) * every if every > 0 else None
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="row", desc=label, file=self.stream)

    def update(self, rows: int) -> None:
        self.done += rows
        if self.bar is not None:
            self.bar.update(rows)
            return
        if self.next_log is not None and self.done >= self.next_log:
            elapsed = time.perf_counter() - self.started
            rate = (self.done - self.initial) / elapsed if elapsed > 0 else 0.0
            print(progress_line(self.label, self.done, self.total, rate), file=self.stream)
            self.next_log = (self.done // self.every + 1) * self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def summary(state, scored_before: int, started: float, errors: str, policy, info) -> str:
    """The run's last line on stderr: rows scored (in all and in this run), speed, bad rows,
    the share answered with the others label, and what decided."""
    elapsed = time.perf_counter() - started
    scored_now = state.rows_scored - scored_before
    others_share = state.rows_others / state.rows_scored if state.rows_scored else 0.0
    return (
        f"scored {state.rows_scored} rows ({scored_now} in this run, "
        f"{scored_now / elapsed if elapsed > 0 else 0:.1f} rows/s), {state.rows_bad} bad rows "
        f"in {errors}, {others_share:.1%} answered '{policy.others_label}'; "
        f"model {info.version}, policy {policy.version}"
    )
