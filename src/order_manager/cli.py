"""Command line entry point (`order-manager`)."""

import typer

app = typer.Typer(help="Order Manager for Bybit V5.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version."""
    from order_manager import __name__ as pkg

    typer.echo(pkg)


def main() -> None:
    app()
