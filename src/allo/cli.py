"""The `allo` command. Commands parse options and call services; no business logic here."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from allo.config import InsecureSettingsError, Settings, get_settings

app = typer.Typer(
    help="Allo: AI-first omnichannel contact center.", no_args_is_help=True, add_completion=False
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
seed_app = typer.Typer(help="Load data.", no_args_is_help=True)
users_app = typer.Typer(help="Console users.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for integrations.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants (client companies).", no_args_is_help=True)
jobs_app = typer.Typer(help="Background jobs.", no_args_is_help=True)
nlu_app = typer.Typer(help="The assistant's language models.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(seed_app, name="seed")
app.add_typer(users_app, name="users")
app.add_typer(apikey_app, name="apikey")
app.add_typer(tenants_app, name="tenants")
app.add_typer(jobs_app, name="jobs")
app.add_typer(nlu_app, name="nlu")
tickets_app = typer.Typer(help="Tickets: list, read, escalate, resolve, assign.", no_args_is_help=True)
routing_app = typer.Typer(help="Routing: the floor as the ACD sees it.", no_args_is_help=True)
app.add_typer(tickets_app, name="tickets")
app.add_typer(routing_app, name="routing")
broadcast_app = typer.Typer(
    help="Proactive messages to a list or segment of customers.", no_args_is_help=True
)
app.add_typer(broadcast_app, name="broadcast")
mastodon_app = typer.Typer(help="Mastodon listening: complaints found and answered.", no_args_is_help=True)
app.add_typer(mastodon_app, name="mastodon")
email_app = typer.Typer(help="E-mail channel: the inbound SMTP server, IMAP polling.", no_args_is_help=True)
app.add_typer(email_app, name="email")

out = Console()
T = TypeVar("T")
err = Console(stderr=True)


def _settings() -> Settings:
    from pydantic import ValidationError
    from rich.markup import escape

    try:
        return get_settings()
    except InsecureSettingsError as exc:
        err.print(f"[red]Refusing to start:[/red] {exc}")
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            name = f"ALLO_{where.upper()}: " if where else ""
            err.print(f"[red]Invalid setting[/red] {escape(name + problem['msg'])}", highlight=False)
        raise typer.Exit(2) from exc


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Migrate the database to the latest schema (or to REVISION)."""
    from allo.kit.migrate import upgrade

    settings = _settings()
    _ensure_sqlite_dir(settings)
    with err.status("Migrating the database…"):
        asyncio.run(upgrade(settings.database_url, revision))
    err.print(f"[green]Database at {revision}[/green] ({settings.database_url.split('://')[0]})")


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision."""
    from allo.kit.migrate import current_revision

    out.print(asyncio.run(current_revision(_settings().database_url)) or "(empty)")


def _ensure_sqlite_dir(settings: Settings) -> None:
    if settings.sqlite_path is not None:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)


@seed_app.command("demo")
def seed_demo() -> None:
    """Load the demo tenant (idempotent: a second run adds nothing)."""
    settings = _settings()
    _seed_demo(settings)


def _seed_demo(settings: Settings) -> None:
    from allo.demo.seed import DEMO_PASSWORD, seed_demo_data

    if not settings.is_dev:
        err.print("[red]The demo data has well-known passwords; it is loaded in dev mode only.[/red]")
        raise typer.Exit(2)
    summary = asyncio.run(
        seed_demo_data(settings.database_url, settings.data_dir, progress=err, secret_key=settings)
    )
    if summary.created:
        err.print(f"[green]Demo data loaded[/green]: {summary.describe()}")
    else:
        err.print("Demo data already present; nothing added.")
    out.print(
        f"\n[bold]Demo accounts[/bold] (organisation: demo, password for all: [bold]{DEMO_PASSWORD}[/bold])"
    )
    for email, role in summary.accounts:
        out.print(f"  {role:<11} {email}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (ALLO_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ALLO_PORT)")] = None,
    workers: Annotated[int, typer.Option(help="Web processes (PostgreSQL only for more than 1)")] = 1,
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Run the job worker in-process")
    ] = True,
) -> None:
    """Serve the API, the console and the customer chat."""
    import uvicorn

    if not worker:
        os.environ["ALLO_RUN_WORKER"] = "false"
        get_settings.cache_clear()
    settings = _settings()
    if workers > 1 and settings.is_sqlite:
        err.print(
            "[red]Several web processes need PostgreSQL (live events cross processes through it).[/red]"
        )
        raise typer.Exit(2)
    bind_host, bind_port = host or settings.host, port or settings.port
    err.print(f"Allo on [bold]http://{bind_host}:{bind_port}[/bold] (mode {settings.mode.value})")
    uvicorn.run(
        "allo.app:create_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        workers=workers,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
    )


@app.command("worker")
def worker_command(
    concurrency: Annotated[int | None, typer.Option(help="Jobs run at once")] = None,
) -> None:
    """Run background jobs (any number of these may run against one PostgreSQL)."""
    settings = _settings()
    if concurrency is not None:
        settings = settings.model_copy(update={"worker_concurrency": concurrency})
    asyncio.run(_run_worker(settings))


async def _run_worker(settings: Settings) -> None:
    from allo.app import background_services, build_database
    from allo.kit.bus import Bus

    bus = Bus()
    db = build_database(settings, bus)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    err.print(f"Job worker started (concurrency {settings.worker_concurrency}); Ctrl-C stops it.")
    try:
        async with background_services(settings, db, bus, run_worker=True):
            await stop.wait()
    finally:
        await db.dispose()


@app.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port (ALLO_PORT)")] = None,
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
) -> None:
    """Migrate, load the demo data, then serve: Allo with a demo tenant in one command."""
    settings = _settings()
    if not settings.is_dev:
        err.print("[red]`allo demo` loads well-known demo passwords; it runs in dev mode only.[/red]")
        raise typer.Exit(2)
    db_upgrade("head")
    _seed_demo(settings)
    serve(host=host, port=port, workers=1, worker=True)


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Login e-mail")],
    name: Annotated[str, typer.Option(help="Full name")],
    tenant: Annotated[str | None, typer.Option(help="Tenant slug (default: ALLO_DEFAULT_TENANT)")] = None,
    role: Annotated[str, typer.Option(help="agent | supervisor | admin")] = "agent",
    tier: Annotated[str, typer.Option(help="n1 | n2 | specialist")] = "n1",
    team: Annotated[str | None, typer.Option(help="Team code")] = None,
    languages: Annotated[str, typer.Option(help="Comma-separated language codes")] = "fr",
    password: Annotated[
        str,
        typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, envvar="ALLO_NEW_USER_PASSWORD"),
    ] = "",
) -> None:
    """Create a console user; the password is prompted for (or read from ALLO_NEW_USER_PASSWORD)."""
    from pydantic import ValidationError

    from allo.agents.schemas import AgentCreate
    from allo.kit.errors import AppError
    from allo.ops import create_user

    settings = _settings()
    try:
        data = AgentCreate.model_validate(
            {
                "email": email,
                "full_name": name,
                "password": password,
                "role": role,
                "tier": tier,
                "team": team,
                "languages": [x.strip() for x in languages.split(",") if x.strip()],
            }
        )
        user_id = asyncio.run(create_user(settings, tenant or settings.default_tenant, data))
    except ValidationError as exc:
        err.print(f"[red]Invalid user:[/red] {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc
    except AppError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    out.print(f"Created user {email} ({role}) with id {user_id}")


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="Tenant slug")],
    name: Annotated[str, typer.Option(help="What the key is for")] = "integration",
    role: Annotated[str, typer.Option(help="agent | supervisor | admin")] = "agent",
) -> None:
    """Create an API key and print it once; only its hash is stored."""
    from allo.kit.errors import AppError
    from allo.models.enums import Role
    from allo.ops import create_key

    settings = _settings()
    try:
        key = asyncio.run(create_key(settings, tenant, name, Role(role)))
    except ValueError as exc:
        err.print(f"[red]Unknown role {role!r}[/red]")
        raise typer.Exit(2) from exc
    except AppError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    err.print("Store this key now; it will not be shown again:")
    out.print(key, soft_wrap=True)


@tenants_app.command("create")
def tenants_create(
    slug: Annotated[str, typer.Option(help="Short unique name, e.g. free-mobile")],
    name: Annotated[str, typer.Option(help="Display name")],
) -> None:
    """Create a tenant with the default policy."""
    from allo.kit.errors import AppError
    from allo.ops import create_tenant

    try:
        tenant_id = asyncio.run(create_tenant(_settings(), slug, name))
    except AppError as exc:
        err.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc
    out.print(f"Created tenant {slug} with id {tenant_id}")


@jobs_app.command("ping")
def jobs_ping(
    delay: Annotated[float, typer.Option(help="Seconds the job waits before answering")] = 0.0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a worker")] = 30.0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait for the job to finish")] = True,
) -> None:
    """Enqueue a diagnostic job and wait until a worker has run it: proves that workers are alive."""
    from allo.ops import ping_workers

    settings = _settings()
    with err.status("Waiting for a worker…"):
        result = asyncio.run(ping_workers(settings, delay=delay, wait_seconds=timeout if wait else 0.0))
    if result.status != "succeeded" and wait:
        err.print(
            f"[red]No worker ran the job within {timeout:g} s[/red] (job {result.job_id}, {result.status})."
        )
        raise typer.Exit(1)
    out.print(f"job {result.job_id}: {result.status}")


@jobs_app.command("stats")
def jobs_stats() -> None:
    """Count jobs by kind and status (the dead letter included)."""
    from rich.table import Table

    from allo.ops import job_counts

    table = Table("kind", "status", "jobs")
    for kind, status, count in asyncio.run(job_counts(_settings())):
        table.add_row(kind, status, str(count))
    out.print(table)


@nlu_app.command("train")
def nlu_train(
    if_missing: Annotated[
        bool, typer.Option("--if-missing", help="Do nothing when the model exists")
    ] = False,
) -> None:
    """Train the assistant's models from data/nlu and the post classifier from data/social (reproducible)."""
    settings = _settings()
    if not (if_missing and settings.nlu_model_path.exists()):
        _train_nlu(settings)
    if not (if_missing and settings.social_model_path.exists()):
        _train_post_classifier(settings)


def _train_nlu(settings: Settings) -> None:
    from allo.assistant.nlu.training import train_and_save

    with err.status("Training…") as status:
        report = train_and_save(
            settings.data_dir,
            settings.nlu_model_path,
            progress=lambda step: status.update(f"Training: {step}…"),
        )
    err.print(
        f"[green]Model written to {settings.nlu_model_path}[/green]: {report.examples} examples "
        f"({report.dropped_overlapping_heldout} left out because they also stand in the held-out split), "
        f"{report.seconds:.1f} s"
    )


def _train_post_classifier(settings: Settings) -> None:
    from allo.social.classifier import train_and_save as train_post_classifier

    with err.status("Training the post classifier…"):
        posts = train_post_classifier(settings.data_dir, settings.social_model_path)
    err.print(
        f"[green]Post classifier written to {settings.social_model_path}[/green]: {posts.examples} examples, "
        f"{posts.seconds:.1f} s"
    )


@nlu_app.command("evaluate")
def nlu_evaluate() -> None:
    """Figures on the held-out split, as one JSON object."""
    import json

    from allo.assistant.nlu.training import evaluate, heldout, load_analyzer

    settings = _settings()
    analyzer = _analyzer_or_exit(settings, load_analyzer)
    out.print_json(json.dumps(evaluate(analyzer, heldout(settings.data_dir))))


@nlu_app.command("compare")
def nlu_compare() -> None:
    """Cross-validate every candidate model on the training split (how the default was chosen)."""
    from rich.table import Table

    from allo.assistant.nlu.training import compare

    settings = _settings()
    with err.status("Cross-validating…") as status:
        results = compare(settings.data_dir, progress=lambda step: status.update(f"Cross-validating {step}…"))
    table = Table("features", "L2", "intent macro-F1", "accuracy")
    for r in results:
        table.add_row(r.spec.name(), f"{r.l2:g}", f"{r.macro_f1:.3f}", f"{r.accuracy:.3f}")
    out.print(table)


def _analyzer_or_exit(settings: Settings, loader: Callable[[Path, Path], T]) -> T:
    if not settings.nlu_model_path.exists():
        err.print(f"[red]No model at {settings.nlu_model_path}[/red]; run `allo nlu train` first.")
        raise typer.Exit(2)
    return loader(settings.nlu_model_path, settings.data_dir)


@app.command()
def analyze(
    file: Annotated[
        typer.FileText | None, typer.Argument(help="JSON lines with a 'text' field, or plain text lines")
    ] = None,
) -> None:
    """Analyse messages: one JSON object per input line on stdout, in the same order."""
    import json

    from allo.assistant.nlu.training import load_analyzer

    settings = _settings()
    analyzer = _analyzer_or_exit(settings, load_analyzer)
    source = file or sys.stdin
    count = 0
    for number, line in enumerate(source, 1):
        raw = line.rstrip("\n")
        if not raw.strip():
            continue
        extra: dict[str, object] = {}
        text = raw
        if raw.lstrip().startswith("{"):
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("text"), str):
                extra = {k: v for k, v in obj.items() if k != "text"}
                text = obj["text"]
            elif obj is not None:
                err.print(f"line {number}: a JSON object needs a string 'text' field; skipped")
                continue
        if len(text.encode("utf-8", errors="surrogatepass")) > settings.max_message_bytes:
            err.print(f"line {number}: longer than {settings.max_message_bytes} bytes; skipped")
            continue
        result = analyzer.analyze(text).to_dict()
        print(json.dumps({**extra, **result}, ensure_ascii=False), flush=False)
        count += 1
        if count % 500 == 0:
            err.print(f"{count} messages analysed", highlight=False)
    sys.stdout.flush()


TenantOption = Annotated[str | None, typer.Option(help="Tenant slug (default: ALLO_DEFAULT_TENANT)")]


def _enum_values(vocabulary: str) -> Callable[[Any], Any]:
    """An option callback that checks values against one of allo.models.enums (imported only when the
    option is used, so that `allo` starts fast) and returns them as spelt there (p1 -> P1)."""

    def check(value: Any) -> Any:
        if value is None:
            return None
        from allo.models import enums

        known: dict[str, str] = {m.value.lower(): str(m.value) for m in getattr(enums, vocabulary)}

        def one(raw: str) -> str:
            if raw.strip().lower() not in known:
                raise typer.BadParameter(f"{raw!r} is not one of {', '.join(known.values())}.")
            return known[raw.strip().lower()]

        return [one(v) for v in value] if isinstance(value, list | tuple) else one(value)

    return check


def _optional(check: Callable[[str], str]) -> Callable[[str | None], str | None]:
    return lambda value: None if value is None else check(value)


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}.")
        return value

    return check


@contextmanager
def _reported_errors() -> Iterator[None]:
    """A service's refusal is one line on stderr with its code, and exit status 1; invalid input, 2."""
    from pydantic import ValidationError
    from rich.markup import escape

    from allo.kit.errors import AppError

    try:
        yield
    except AppError as exc:
        hints = ""
        if isinstance(exc.details, dict):
            for key, value in exc.details.items():
                if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                    hints += f" {key.replace('_', ' ').capitalize()}: {', '.join(value)}."
        err.print(
            f"[red]Error ({exc.code}):[/red] {escape(exc.message + hints)}", soft_wrap=True, highlight=False
        )
        raise typer.Exit(1) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        err.print(
            f"[red]Invalid {escape(where)}:[/red] {escape(first['msg'])}", soft_wrap=True, highlight=False
        )
        raise typer.Exit(2) from exc


def _ticket_reference(text: str) -> int | uuid.UUID:
    from allo.tickets.cli import parse_reference

    try:
        return parse_reference(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="REF") from exc


RefArgument = Annotated[
    str, typer.Argument(metavar="REF", help="T-000042, 42 or the ticket's UUID", show_default=False)
]


@tickets_app.command("list")
def tickets_list(
    tenant: TenantOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="new | open | pending | resolved | closed (repeatable)",
            callback=_enum_values("TicketStatus"),
        ),
    ] = None,
    priority: Annotated[
        list[str] | None,
        typer.Option(help="P1 | P2 | P3 | P4 (repeatable)", callback=_enum_values("Priority")),
    ] = None,
    team: Annotated[str | None, typer.Option(help="Team code")] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only open tickets past their resolution time")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most N tickets")] = 50,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="table | json (one object per line) | csv",
            callback=_one_of("table", "json", "csv"),
        ),
    ] = "table",
) -> None:
    """List tickets, newest first, with their SLA clocks."""
    from allo.tickets import cli as tickets

    settings = _settings()
    with _reported_errors():
        lines = asyncio.run(
            tickets.list_tickets(
                settings,
                tenant or settings.default_tenant,
                status=status or (),
                priority=priority or (),
                team=team,
                overdue=overdue,
                limit=limit,
            )
        )
    if output == "json":
        tickets.write_json_lines(sys.stdout, lines)
    elif output == "csv":
        tickets.write_csv(sys.stdout, lines)
    else:
        tickets.print_table(out, lines)
        if len(lines) == limit:
            err.print(f"Showing the newest {limit} tickets; use --limit for more.", highlight=False)


@tickets_app.command("show")
def tickets_show(ref: RefArgument, tenant: TenantOption = None) -> None:
    """One ticket with its clocks, conversations and history."""
    from allo.tickets import cli as tickets

    reference = _ticket_reference(ref)
    settings = _settings()
    with _reported_errors():
        view = asyncio.run(tickets.show_ticket(settings, tenant or settings.default_tenant, reference))
    tickets.print_ticket(out, view)


@tickets_app.command("escalate")
def tickets_escalate(
    ref: RefArgument,
    reason: Annotated[str, typer.Option(help="Why: kept in the ticket's history")],
    tier: Annotated[
        str | None, typer.Option(help="n2 | specialist (default: one tier up)", callback=_enum_values("Tier"))
    ] = None,
    team: Annotated[str | None, typer.Option(help="Team code to send the ticket to")] = None,
    tenant: TenantOption = None,
) -> None:
    """Escalate a ticket one tier up, or to the tier and/or team named; it changes queue."""
    from allo.tickets import cli as tickets

    _ticket_action(
        "Escalated",
        ref,
        tenant,
        lambda settings, slug, reference: tickets.escalate_ticket(
            settings, slug, reference, tier=tier, team=team, reason=reason
        ),
    )


@tickets_app.command("resolve")
def tickets_resolve(
    ref: RefArgument,
    disposition: Annotated[
        str | None, typer.Option(help="Resolution code from the tenant's dispositions")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="Why: kept in the ticket's history")] = None,
    tenant: TenantOption = None,
) -> None:
    """Resolve a ticket with a disposition (resolution code)."""
    from allo.tickets import cli as tickets

    _ticket_action(
        "Resolved",
        ref,
        tenant,
        lambda settings, slug, reference: tickets.resolve_ticket(
            settings, slug, reference, disposition=disposition, reason=reason
        ),
    )


@tickets_app.command("assign")
def tickets_assign(
    ref: RefArgument,
    agent_email: Annotated[
        str, typer.Argument(metavar="AGENT_EMAIL", help="The agent's login e-mail", show_default=False)
    ],
    tenant: TenantOption = None,
) -> None:
    """Give a ticket to an agent who is logged in and has the tier and skills it needs."""
    from allo.tickets import cli as tickets

    _ticket_action(
        "Assigned",
        ref,
        tenant,
        lambda settings, slug, reference: tickets.assign_ticket(settings, slug, reference, agent_email),
    )


def _ticket_action(
    done: str,
    ref: str,
    tenant: str | None,
    action: Callable[[Settings, str, Any], Coroutine[Any, Any, Any]],
) -> None:
    """Run one change on a ticket as the system, and print the ticket as it is now (or the error)."""
    from allo.tickets import cli as tickets

    reference = _ticket_reference(ref)
    settings = _settings()
    with _reported_errors():
        line = asyncio.run(action(settings, tenant or settings.default_tenant, reference))
    out.print(f"{done} {tickets.summary(line)}", soft_wrap=True, highlight=False, markup=False)


@routing_app.command("status")
def routing_status(
    tenant: TenantOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of tables")] = False,
) -> None:
    """The floor: waiting work per queue (team, tier, language), agents by status and their load."""
    from allo.routing import cli as routing

    settings = _settings()
    with _reported_errors():
        floor = asyncio.run(routing.floor(settings, tenant or settings.default_tenant))
    if as_json:
        out.print_json(floor.model_dump_json())
    else:
        routing.print_floor(out, floor)


@app.command("kpis")
def kpis_command(
    start: Annotated[
        datetime | None,
        typer.Option("--from", formats=["%Y-%m-%d"], help="First day, UTC (default: 6 days before --to)"),
    ] = None,
    end: Annotated[
        datetime | None,
        typer.Option("--to", formats=["%Y-%m-%d"], help="Last day, included, UTC (default: today)"),
    ] = None,
    tenant: TenantOption = None,
    all_tenants: Annotated[bool, typer.Option("--all-tenants", help="Every active tenant")] = False,
    team: Annotated[str | None, typer.Option(help="Team code")] = None,
    channel: Annotated[
        str | None, typer.Option(help="webchat | sms | whatsapp | …", callback=_enum_values("Channel"))
    ] = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by", help="day | week: the KPIs per bucket too", callback=_optional(_one_of("day", "week"))
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--format",
            help="table | json (one object) | csv (the KPIs, or the series with --by)",
            callback=_one_of("table", "json", "csv"),
        ),
    ] = "table",
) -> None:
    """The supervisor dashboard's KPIs against the objectives, and per-agent figures (docs/kpis.md)."""
    from rich.markup import escape

    from allo.kpis import cli as kpis

    settings = _settings()
    if all_tenants and tenant:
        err.print("[red]Use --tenant or --all-tenants, not both.[/red]")
        raise typer.Exit(2)
    try:
        results = asyncio.run(
            kpis.compute(
                settings,
                None if all_tenants else tenant or settings.default_tenant,
                start=start.date() if start else None,
                end=end.date() if end else None,
                team=team,
                channel=channel,
                granularity="week" if by == "week" else "day" if by == "day" else None,
            )
        )
    except kpis.KpiCommandError as exc:
        err.print(f"[red]Error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    if output == "json":
        kpis.write_json(sys.stdout, results, all_tenants=all_tenants)
    elif output == "csv":
        kpis.write_csv(sys.stdout, results, all_tenants=all_tenants)
    else:
        for index, result in enumerate(results):
            if index:
                out.print()
            kpis.print_tables(out, result)


def _mastodon_settings() -> Settings:
    settings = _settings()
    if not settings.mastodon_configured:
        err.print(
            "[red]Mastodon is not configured:[/red] set ALLO_MASTODON_API_BASE_URL and "
            "ALLO_MASTODON_ACCESS_TOKEN (and ALLO_MASTODON_HASHTAGS, ALLO_MASTODON_DRY_RUN as needed).",
            highlight=False,
        )
        raise typer.Exit(2)
    if not settings.social_model_path.exists():
        err.print(
            f"[red]No post classifier at {settings.social_model_path}[/red]; run `allo nlu train` first."
        )
        raise typer.Exit(2)
    return settings


@mastodon_app.command("poll")
def mastodon_poll(
    once: Annotated[bool, typer.Option("--once", help="Read what is new, act on it, and exit")] = False,
    output: Annotated[
        str,
        typer.Option(
            "--format", help="table | json (one object per line)", callback=_one_of("table", "json")
        ),
    ] = "table",
) -> None:
    """Read every watched hashtag and the mentions from where the last run stopped, decide, reply."""
    from allo.social import cli as social
    from allo.social.listener import ListenerNotConfigured
    from allo.social.mastodon import MastodonProblem

    if not once:
        err.print(
            "Use `allo mastodon poll --once` for one pass, or `allo mastodon listen` to keep listening."
        )
        raise typer.Exit(2)
    settings = _mastodon_settings()
    try:
        with _reported_errors():
            result = asyncio.run(social.poll_once(settings, err))
    except (MastodonProblem, ListenerNotConfigured) as exc:
        err.print(f"[red]Mastodon:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    social.print_result(out, err, result, as_json=output == "json", stream=sys.stdout)


@mastodon_app.command("listen")
def mastodon_listen(
    worker: Annotated[
        bool, typer.Option("--worker/--no-worker", help="Also run the job worker that posts the replies")
    ] = True,
) -> None:
    """Listen until Ctrl-C: live streams, polling when they fail, replies posted as they are decided."""
    from allo.social import cli as social

    settings = _mastodon_settings()
    asyncio.run(social.listen(settings, err, run_worker=worker))


@mastodon_app.command("status")
def mastodon_status(tenant: TenantOption = None) -> None:
    """Where each watched source was read up to, and the replies by state."""
    from allo.social import cli as social

    settings = _settings()
    with _reported_errors():
        cursors, counts = asyncio.run(
            social.status(settings, tenant or settings.mastodon_tenant or settings.default_tenant)
        )
    from rich.table import Table

    table = Table("Source", "Last id", "Last read")
    for source, last_id, polled in cursors:
        table.add_row(source, last_id or "", polled.isoformat(timespec="seconds") if polled else "")
    out.print(table)
    out.print(", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "No post seen yet.")


@email_app.command("smtp-serve")
def email_smtp_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (ALLO_SMTP_INBOUND_HOST)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (ALLO_SMTP_INBOUND_PORT)")] = None,
) -> None:
    """Receive mail for the e-mail accounts' addresses until Ctrl-C (a job worker processes it)."""
    from allo.channels.email.smtp_inbound import serve_until_stopped

    settings = _settings()
    if port is None and settings.smtp_inbound_port is None:
        err.print("[red]No port:[/red] set ALLO_SMTP_INBOUND_PORT or pass --port.", highlight=False)
        raise typer.Exit(2)
    try:
        asyncio.run(serve_until_stopped(settings, err.print, host=host, port=port))
    except OSError as exc:
        err.print(f"[red]Cannot listen:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc


@email_app.command("poll")
def email_poll(
    once: Annotated[bool, typer.Option("--once", help="Poll every IMAP account once and exit")] = False,
) -> None:
    """Read the unseen mail of the e-mail accounts that have IMAP settings, and store it."""
    from allo.channels.email.imap_poller import poll_all_once

    if not once:
        err.print("Use `allo email poll --once`; `allo serve` and `allo worker` keep polling on their own.")
        raise typer.Exit(2)
    with _reported_errors():
        reports = asyncio.run(poll_all_once(_settings()))
    for account_id, report in reports.items():
        out.print(
            f"{account_id}: {report.unseen} unseen, {report.stored} stored, "
            f"{report.duplicates} already here, {report.ignored} ignored"
        )
    if not reports:
        out.print("No e-mail account with IMAP settings (or another process is polling them).")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


@broadcast_app.command("send")
def broadcast_send(
    name: Annotated[str, typer.Option(help="What the send is, as supervisors will see it")],
    text_fr: Annotated[
        str | None, typer.Option("--text-fr", help="French text; {name} is the customer's name")
    ] = None,
    text_en: Annotated[str | None, typer.Option("--text-en", help="English text")] = None,
    tenant: TenantOption = None,
    channel: Annotated[
        str, typer.Option(help="preferred | sms | whatsapp | messenger | email")
    ] = "preferred",
    customer: Annotated[list[str] | None, typer.Option(help="A customer's id (repeatable)")] = None,
    segment: Annotated[str | None, typer.Option(help="Everyone in this segment")] = None,
    vip: Annotated[bool | None, typer.Option("--vip/--not-vip", help="Only VIPs, or only others")] = None,
    language: Annotated[str | None, typer.Option(help="Only customers of this language")] = None,
    area: Annotated[str | None, typer.Option(help="Only customers of this area")] = None,
    template: Annotated[str | None, typer.Option(help="WhatsApp template name")] = None,
    template_param: Annotated[list[str] | None, typer.Option(help="Template parameter (repeatable)")] = None,
    ignore_quiet_hours: Annotated[
        bool, typer.Option("--ignore-quiet-hours", help="Send now even in the tenant's quiet hours")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Show progress until it is done")] = True,
    run_worker: Annotated[
        bool, typer.Option("--run-worker", help="Run the jobs in this process (no `allo serve` running)")
    ] = False,
) -> None:
    """Send a message or template to customers on their preferred channel, respecting opt-outs and quiet
    hours; shows the progress and the delivery report."""
    from allo.proactive import cli as broadcasts
    from allo.proactive.schemas import BroadcastCreate

    settings = _settings()
    slug = tenant or settings.default_tenant
    texts = {k: v for k, v in (("fr", text_fr), ("en", text_en)) if v}
    with _reported_errors():
        data = BroadcastCreate.model_validate(
            {
                "name": name,
                "channel": channel,
                "texts": texts,
                "template": (
                    {"name": template, "language": "fr", "parameters": template_param or []}
                    if template
                    else None
                ),
                "audience": {
                    k: v
                    for k, v in {
                        "customer_ids": customer,
                        "segment": segment,
                        "vip": vip,
                        "language": language,
                        "area": area,
                    }.items()
                    if v is not None
                },
                "respect_quiet_hours": not ignore_quiet_hours,
            }
        )
        broadcast_id = asyncio.run(broadcasts.send(settings, slug, data))
        err.print(f"Broadcast {broadcast_id} created.")
        if wait:
            report = asyncio.run(broadcasts.follow(settings, slug, broadcast_id, err, run_worker=run_worker))
            out.print(broadcasts.report_table(report))


@broadcast_app.command("status")
def broadcast_status(
    broadcast_id: Annotated[str, typer.Argument(help="The broadcast's id")],
    tenant: TenantOption = None,
) -> None:
    """A proactive send's state and delivery report."""
    from allo.proactive import cli as broadcasts

    settings = _settings()
    try:
        ident = uuid.UUID(broadcast_id)
    except ValueError as exc:
        raise typer.BadParameter("not a broadcast id", param_hint="BROADCAST_ID") from exc
    with _reported_errors():
        broadcast, report, _ = asyncio.run(
            broadcasts.state_of(settings, tenant or settings.default_tenant, ident)
        )
    out.print(f"{broadcast.name}: {broadcast.state.value}")
    out.print(broadcasts.report_table(report))


sms_app = typer.Typer(help="SMS: Kannel's configuration for a Kannel channel account.", no_args_is_help=True)
app.add_typer(sms_app, name="sms")


@sms_app.command("kannel-config")
def sms_kannel_config(
    account_id: Annotated[uuid.UUID, typer.Argument(help="The Kannel channel account's id")],
    fake_smsc_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Kannel's test SMSC on this port (demo, tests)")
    ] = None,
    smpp_host: Annotated[str | None, typer.Option(help="The operator's SMSC (SMPP 3.4)")] = None,
    smpp_port: Annotated[int, typer.Option(min=1, max=65535)] = 2775,
    smpp_system_id: Annotated[str | None, typer.Option(help="The SMSC's login for us")] = None,
    smpp_system_type: Annotated[str, typer.Option()] = "",
    log_dir: Annotated[Path | None, typer.Option(help="Where bearerbox and smsbox write their logs")] = None,
    output: Annotated[Path | None, typer.Option("--out", help="Write here instead of printing")] = None,
) -> None:
    """Print kannel.conf for a Kannel account: sendsms for Allo, every customer SMS to the account's hook.

    The SMSC link is Kannel's test SMSC (--fake-smsc-port) or the operator's over SMPP (--smpp-host and
    --smpp-system-id; the password is read from ALLO_KANNEL_SMPP_PASSWORD or asked for). The file holds
    secrets: keep it readable by Kannel only."""
    from allo.channels.kannel.config import FakeSmsc, SmppSmsc, config_for_account
    from allo.kit.security import new_token

    smsc: FakeSmsc | SmppSmsc
    if fake_smsc_port is not None and smpp_host is None:
        smsc = FakeSmsc(fake_smsc_port)
    elif smpp_host is not None and smpp_system_id and fake_smsc_port is None:
        password = os.environ.get("ALLO_KANNEL_SMPP_PASSWORD") or typer.prompt(
            "SMPP password", hide_input=True
        )
        smsc = SmppSmsc(smpp_host, smpp_port, smpp_system_id, password, smpp_system_type)
    else:
        err.print("Give either --fake-smsc-port, or --smpp-host with --smpp-system-id.")
        raise typer.Exit(2)
    with _reported_errors():
        text = asyncio.run(
            config_for_account(_settings(), account_id, smsc, admin_password=new_token(24), log_dir=log_dir)
        )
    if output is None:
        # As it is: rich would read a password's ":smile:" as an emoji.
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True, end="")
        return
    # Readable by its owner only before the secrets are in it (touch leaves a file that was there as it was).
    output.touch(mode=0o600)
    output.chmod(0o600)
    output.write_text(text, encoding="utf-8")
    err.print(f"Wrote {output} (mode 600).")
