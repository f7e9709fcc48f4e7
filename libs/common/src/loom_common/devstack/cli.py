"""`loom-stack up | down | status`: what `make up` and `make down` call."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from loom_common.devstack import infra, ports, stack

app = typer.Typer(help="Run the whole Loom platform on this machine.", no_args_is_help=True)
console = Console(width=110)


def _paths() -> stack.StackPaths:
    return stack.StackPaths(Path(os.environ.get("LOOM_ROOT", Path.cwd())).resolve())


@app.command()
def up(timeout: float = typer.Option(120.0, help="Seconds to wait for every /readyz.")) -> None:
    """Start NATS, Postgres and every service in the background, wait until all are ready."""
    paths = _paths()
    ready = stack.up(paths, timeout_s=timeout)
    table = Table(title="Loom is up" if all(ready.values()) else "Loom: some services are not ready")
    table.add_column("service")
    table.add_column("ready")
    table.add_column("URL")
    table.add_column("gRPC")
    for svc in ports.SERVICES:
        table.add_row(svc.name, "yes" if ready[svc.name] else "NO", f"{stack.scheme()}://127.0.0.1:{svc.http}",
                      f"127.0.0.1:{svc.grpc}" if svc.grpc else f"admin :{svc.admin}" if svc.admin else "")
    if "console" in ready:
        table.add_row("console", "yes" if ready["console"] else "NO",
                      f"{stack.scheme()}://127.0.0.1:{ports.CONSOLE}", "")
    table.add_row("nats", "", f"nats://127.0.0.1:{ports.NATS}", f"monitor :{ports.NATS_MONITOR}")
    table.add_row("postgres", "", infra.postgres_url(ports.POSTGRES), "")
    console.print(table)
    console.print(f"internal credentials (Postgres, NATS, gRPC): {paths.state / 'secrets'} (mode 0600)")
    if "console" in ready:
        console.print(f"open the console: {stack.scheme()}://127.0.0.1:{ports.CONSOLE}")
    if stack.tls_requested():
        console.print(f"TLS 1.3 everywhere; clients trust the local CA: {paths.ca_file}")
    else:
        console.print("console not started: it needs Node 20 and a build (make setup runs npm ci and vite build)")
    console.print(f"logs: {paths.logs}   stop: make down")
    if not all(ready.values()):
        raise typer.Exit(1)


@app.command()
def down() -> None:
    """Stop everything `up` started."""
    if not stack.down(_paths()):
        console.print("[red]supervisord did not stop in time[/red]")
        raise typer.Exit(1)
    console.print("Loom stopped.")


@app.command()
def status() -> None:
    """Show each supervised process."""
    console.print(stack.status(_paths()))


@app.command("provision-db")
def provision_db() -> None:
    """The database bootstrap for a cluster (the Kubernetes Job db-bootstrap): a role per service
    owning its schema (devstack.db_roles). Reads the superuser's DSN from LOOM_ADMIN_DATABASE_URL
    and each service's own DSN (role loom_<service> and its password) from
    LOOM_<SERVICE>_DATABASE_URL."""
    from urllib.parse import unquote, urlsplit

    from loom_common.devstack import db_roles

    admin = os.environ.get("LOOM_ADMIN_DATABASE_URL")
    if not admin:
        console.print("[red]LOOM_ADMIN_DATABASE_URL is not set[/red]")
        raise typer.Exit(2)
    passwords = {}
    for service in db_roles.SERVICE_SCHEMAS:
        dsn = urlsplit(os.environ.get(f"LOOM_{service.upper()}_DATABASE_URL", ""))
        if dsn.username != db_roles.role_name(service) or not dsn.password:
            console.print(f"[red]LOOM_{service.upper()}_DATABASE_URL must log in as "
                          f"{db_roles.role_name(service)} with a password[/red]")
            raise typer.Exit(2)
        passwords[service] = unquote(dsn.password)
    db_roles.provision_sync(admin, passwords)
    console.print(f"roles and schemas ready: {', '.join(map(db_roles.role_name, passwords))}")


@app.command("compose-secrets")
def compose_secrets(root: Path = typer.Argument(..., help="The compose deployment's secrets volume."),
                    provision: bool = typer.Option(False, "--provision-db",
                                                   help="Make the services' roles (Postgres is up).")) -> None:
    """The internal credentials of deploy/compose (devstack.compose_secrets): generate them into
    ROOT once and lay out each container's folder; with --provision-db, make each service's
    database role and schema."""
    from loom_common.devstack import compose_secrets as cs

    if provision:
        console.print(f"roles and schemas ready: {', '.join(cs.provision_db(root))}")
    else:
        console.print(f"secrets ready for: {', '.join(cs.write(root))}")
