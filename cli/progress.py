"""Progress output of the commands: notes on stderr and a progress bar that appears only once work runs.

Quiet (``-q``) silences both; results (tables, summaries) never go through here.
"""

from __future__ import annotations

import time

import click


def note(ctx_obj, message: str) -> None:
    """One line on stderr, unless quiet."""
    if not (ctx_obj or {}).get("quiet"):
        click.echo(message, err=True)


class LazyBar:
    """A tqdm bar drawn at the first report of progress, so that no check that fails before the work
    starts is ever preceded by a bar. ``start(initial)`` marks when this process's work began and how
    much was done before it (the epochs of a resumed run): the rate and the time left count only the
    work done since, in this process."""

    def __init__(self, ctx_obj, **tqdm_kwargs):
        self.enabled = not (ctx_obj or {}).get("quiet")
        self.kwargs = tqdm_kwargs
        self.bar = None
        self.t0 = None
        self.initial = 0

    def start(self, initial: int = 0, total=None) -> None:
        self.t0 = time.time()
        self.initial = int(initial)
        if total is not None:
            self.kwargs["total"] = total

    def update_to(self, n: int, postfix: str | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(initial=self.initial, **self.kwargs)
            if self.t0 is not None:  # the clock runs from the start of the work, not from the first report
                self.bar.start_t = self.bar.last_print_t = self.t0
        if postfix is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
        self.bar.update(n - self.bar.n)

    def advance(self, k: int = 1) -> None:
        self.update_to((self.bar.n if self.bar is not None else self.initial) + k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
