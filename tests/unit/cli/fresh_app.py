"""One CLI verb on a fresh typer app, so a command's test needs neither the whole CLI nor a subprocess."""

import typer


def fresh_app(register) -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("other")  # with one command typer would make the verb the app itself
    def other() -> None:
        pass

    return app
