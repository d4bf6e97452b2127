"""The `squall` command line."""

from __future__ import annotations

from pathlib import Path

import click

from squall import __version__
from squall.core.config import (
    AUTH_MODES,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_REGION,
    Settings,
    default_data_dir,
)

LOG_LEVELS = ("debug", "info", "warning", "error")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """squall: a self-hosted serverless cloud, wire-compatible with the AWS APIs."""


@main.command()
@click.option("--host", envvar="SQUALL_HOST", default=DEFAULT_HOST, show_default=True)
@click.option("--port", envvar="SQUALL_PORT", default=DEFAULT_PORT, type=int, show_default=True)
@click.option(
    "--data-dir",
    envvar="SQUALL_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where state lives. [default: {default_data_dir()}]",
)
@click.option(
    "--log-level",
    envvar="SQUALL_LOG_LEVEL",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="info",
    show_default=True,
    help="debug logs one line per request.",
)
@click.option("--region", envvar="SQUALL_REGION", default=DEFAULT_REGION, show_default=True)
@click.option(
    "--auth",
    envvar="SQUALL_AUTH",
    type=click.Choice(AUTH_MODES),
    default="sigv4",
    show_default=True,
    help="sigv4 verifies every signature; any accepts every access key unchecked.",
)
@click.option(
    "--concurrency-limit",
    envvar="SQUALL_CONCURRENCY_LIMIT",
    default=1000,
    type=click.IntRange(1),
    show_default=True,
    help="The account's concurrent executions (Lambda's ConcurrentExecutions).",
)
@click.option(
    "--async-retry-delay",
    envvar="SQUALL_ASYNC_RETRY_DELAY",
    default=60.0,
    type=click.FloatRange(0),
    show_default=True,
    help="Seconds before the first retry of a failed asynchronous invoke (doubles after).",
)
@click.option(
    "--keep-alive",
    envvar="SQUALL_KEEP_ALIVE",
    default=600.0,
    type=click.FloatRange(0),
    show_default=True,
    help="Seconds an idle sandbox stays warm.",
)
def server(
    host: str,
    port: int,
    data_dir: Path | None,
    log_level: str,
    region: str,
    auth: str,
    concurrency_limit: int,
    async_retry_delay: float,
    keep_alive: float,
) -> None:
    """Run the squall server."""
    from squall.server import run

    run(
        Settings(
            host=host,
            port=port,
            data_dir=(data_dir or default_data_dir()).expanduser().resolve(),
            log_level=log_level.lower(),
            region=region,
            auth=auth,
            concurrency_limit=concurrency_limit,
            async_retry_delay_s=async_retry_delay,
            keep_alive_s=keep_alive,
        )
    )


@main.command()
@click.argument("function")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option("--since", default="10m", show_default=True, help="10m, 2h, 1d or an ISO time.")
@click.option("--filter", "pattern", default=None, help="A CloudWatch Logs filter pattern.")
@click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None, help="squall's URL.")
@click.option("--region", envvar="AWS_DEFAULT_REGION", default=None)
def logs(
    function: str,
    follow: bool,
    since: str,
    pattern: str | None,
    endpoint_url: str | None,
    region: str | None,
) -> None:
    """Print a function's log events (FUNCTION: a name, an ARN or a log group)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from squall import tail

    try:
        start = tail.parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        group = tail.log_group_of(function, tail.client("lambda", endpoint_url, region))
        client = tail.client("logs", endpoint_url, region)
        for event in tail.events(client, group, start, pattern, follow=follow):
            line, colour = tail.format_event(event)
            click.echo(click.style(line, fg=colour) if colour else line)
    except ClientError as exc:
        error = exc.response["Error"]
        raise click.ClickException(f"{error['Code']}: {error['Message']}") from None
    except (BotoCoreError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass


@main.command()
def version() -> None:
    """Print squall's version."""
    click.echo(f"squall {__version__}")


@main.command()
def doctor() -> None:
    """Report which sandbox protections this host supports."""
    from squall.doctor import format_report, probe_host
    from squall.sandbox.runtimes import SUPPORTED, interpreter_for

    click.echo(format_report(probe_host()))
    click.echo("\nruntimes:")
    for runtime in SUPPORTED:
        interpreter = interpreter_for(runtime)
        how = "exact" if interpreter.exact else f"fallback to Python {interpreter.version}"
        click.echo(f"  {runtime:<16} {interpreter.executable} ({how})")
