"""The `localentropy` command group. Each sub-group lives in its own module and is registered here.

Errors: every usage mistake (a bad option value, a missing option or argument, an unknown
command) and every typed error of the packages is one line on stderr, ``localentropy: error: ...``,
and exit status 2; click's usage block is shown only by ``--help`` (and for a bare group name).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

import click

from localentropy.cli.errors import user_error_types


class UserError(click.ClickException):
    """A mistake the user can fix: shown as one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"localentropy: error: {self.format_message()}", err=True)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[0] if lines else "invalid input"


def _as_user_error(exc: click.ClickException) -> UserError:
    """click's message on one line (a list of choices it spreads over several lines is joined)."""
    if isinstance(exc, UserError):
        return exc
    lines = [ln.strip() for ln in exc.format_message().strip().splitlines() if ln.strip()]
    return UserError(" ".join(lines) or "invalid usage")


class _Group(click.Group):
    """A click group that turns usage mistakes and the packages' typed errors into one line on stderr and exit 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.ClickException as exc:  # an unknown global option, a bad -v value, ...
            raise _as_user_error(exc) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.NoArgsIsHelpError, click.Abort):
            raise
        except click.ClickException as exc:  # parsing a sub-command's options, click.BadParameter from a check
            raise _as_user_error(exc) from None
        except KeyboardInterrupt:  # a command that keeps its work says where (ctx.obj["kept"]); the others keep nothing
            _deaf_from_now()
            kept = (ctx.obj or {}).get("kept") or "nothing was kept (this command has no checkpoint)"
            click.echo(f"localentropy: interrupted; {kept}", err=True)
            _exit_interrupted()
        except user_error_types() as exc:
            message = _one_line(exc) if str(exc).strip() else type(exc).__name__
            if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in message:
                message = f"{exc.filename}: {message}"
            raise UserError(message) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output (repeat for more).")
@click.option("-q", "--quiet", is_flag=True,
              help="No progress bars or notes on stderr; results and errors are still printed.")
@click.version_option(package_name="localentropy")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Local entropy, local energy and entropic training for flat minima (papers 000 and 002)."""
    ctx.obj = {"verbose": 0 if quiet else verbose + 1, "quiet": quiet}


def _register() -> None:
    from localentropy.cli.committee_cmd import energy, eval_, train
    from localentropy.cli.data_cmd import data
    from localentropy.cli.deep_cmd import deep
    from localentropy.cli.figure_cmd import figure
    from localentropy.cli.measures_cmd import measures
    from localentropy.cli.phi_cmd import phi

    for command in (data, train, eval_, energy, phi, figure, measures, deep):
        cli.add_command(command)


_STANDALONE = [False]  # set by main(): the process is the `localentropy` command itself


def _deaf_from_now() -> None:
    """Once interrupted, the command is leaving: a second SIGINT (or SIGTERM) must not turn the orderly exit
    (status 130, the one line) into Python's death by signal or a traceback. Only in the command's own
    process (main()): in a caller's process (a test runner) an ignored SIGINT would outlive the command and be
    inherited by every process it starts later."""
    if not _STANDALONE[0]:
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        pass


def _exit_interrupted() -> None:
    """Exit status 130. In the command's own process by ``os._exit`` once the output is flushed: a Ctrl-C that
    landed inside an extension's start-up code marks the interpreter as killed by an unhandled interrupt, and
    Python would then end itself by SIGINT (status −2) after our orderly exit; the command's own cleanup
    (``finally`` blocks, worker pools) has run by now."""
    if not _STANDALONE[0]:
        sys.exit(130)
    atexit._run_exitfuncs()  # what a normal exit runs: multiprocessing's finalizers release their semaphores
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


def _interrupted_at_start() -> None:
    """Ctrl-C while the commands load: nothing has started, so nothing was kept; no traceback."""
    _deaf_from_now()
    click.echo("localentropy: interrupted; nothing was kept (no command had started)", err=True)
    _exit_interrupted()


try:
    _register()
except KeyboardInterrupt:
    _interrupted_at_start()


def _terminated(signum, frame):
    """SIGTERM (a scheduler's or `kill`'s stop) ends a command as Ctrl-C does: workers stopped, work kept."""
    raise KeyboardInterrupt


def main() -> None:
    _STANDALONE[0] = True
    signal.signal(signal.SIGTERM, _terminated)
    try:
        cli(prog_name="localentropy")
    except KeyboardInterrupt:  # while click parses the command line, before a command runs
        _interrupted_at_start()


if __name__ == "__main__":
    main()
