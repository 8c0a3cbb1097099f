"""The `localentropy` command group. Each sub-group lives in its own module and is registered here."""

from __future__ import annotations

import sys

import click

from localentropy.cli.errors import user_error_types


class _Group(click.Group):
    """A click group that turns the packages' typed errors into one line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            click.echo("localentropy: interrupted; rerun the same command to resume from the last checkpoint", err=True)
            sys.exit(130)
        except user_error_types() as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in message:
                message = f"{exc.filename}: {message}"
            click.echo(f"localentropy: error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More output (repeat for more).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or summaries, only errors.")
@click.version_option(package_name="localentropy")
@click.pass_context
def cli(ctx, verbose, quiet):
    """Local entropy, local energy and entropic training for flat minima (papers 000 and 002)."""
    ctx.obj = {"verbose": 0 if quiet else verbose + 1, "quiet": quiet}


def _register() -> None:
    from localentropy.cli.committee_cmd import energy, eval_, train
    from localentropy.cli.data_cmd import data
    from localentropy.cli.figure_cmd import figure
    from localentropy.cli.phi_cmd import phi

    for command in (data, train, eval_, energy, phi, figure):
        cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="localentropy")


if __name__ == "__main__":
    main()
