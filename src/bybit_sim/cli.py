"""Command line entry point (`bybit-sim`)."""

import typer

app = typer.Typer(help="Local Bybit V5 exchange simulator.", no_args_is_help=True)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo("bybit_sim")


def main() -> None:
    app()
