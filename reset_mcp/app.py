"""The composition root: settings in, a running `App` out. Every part is wired here, and only here.

`build_app` builds the parts and hands each what it needs; nothing is assigned onto a
part after it is built. `app_with_jobs` is what a serving process runs: the App plus its
one background job runner (deliveries, approval expiry, retention).
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio

from reset_mcp import __version__
from reset_mcp.audit import AuditKey
from reset_mcp.bounds import CallBounds
from reset_mcp.clock import Clock, SystemClock
from reset_mcp.compose import Composer
from reset_mcp.compose.models import Branding
from reset_mcp.config import NO_DIRECTORY_WARNING, Settings
from reset_mcp.context import GeoLocator
from reset_mcp.data_dir import ensure_data_dir, load_or_create_secret
from reset_mcp.deps import Deps
from reset_mcp.directory import Directory, open_directory_of
from reset_mcp.emails.kind import EmailKind, RenderEnv
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.emails.registry import BUILTIN, EmailKinds
from reset_mcp.flows.jobs import JobRunner
from reset_mcp.flows.oversight_digest import OverseerDigest
from reset_mcp.flows.reset import ResetService
from reset_mcp.flows.startup import on_open
from reset_mcp.links import ApprovalLinks
from reset_mcp.mail import EmailBackend, open_email_backend
from reset_mcp.metrics import Metrics
from reset_mcp.outbox.dispatcher import Dispatcher, Observer, RetryPolicy
from reset_mcp.outbox.release import Releaser
from reset_mcp.policy.abuse import AbuseRules
from reset_mcp.policy.oversight import Policy, load_policy
from reset_mcp.store import Store, open_store
from reset_mcp.tokens import TokenSigner

log = logging.getLogger("reset_mcp")
STOP_SECONDS = 30.0  # a graceful stop waits this long for deliveries in flight


def branding(settings: Settings) -> Branding:
    return Branding(
        product_name=settings.product_name,
        sender_name=settings.sender_name,
        logo_url=settings.logo_url,
        primary_color=settings.primary_color,
        support_url=settings.support_url,
        support_email=settings.support_email,
        postal_address=settings.postal_address,
        forgot_password_url=settings.forgot_password_url,
    )


def composer_for(settings: Settings, kinds: Iterable[EmailKind[Any, Any]] = BUILTIN) -> Composer:
    """The composer alone (previews and checks that need no store)."""
    return Composer(branding(settings), settings.template_dir, list(kinds))


def render_env(settings: Settings, composer: Composer, links: ApprovalLinks | None = None) -> RenderEnv:
    """What rendering needs besides a payload: the configured link templates and lifetime."""
    return RenderEnv(composer, settings.reset_url, settings.report_url, settings.token_ttl_minutes, links)


@dataclass(slots=True)
class App:
    settings: Settings
    store: Store
    backend: EmailBackend
    kinds: EmailKinds
    composer: Composer
    messages: MessageFactory
    policy: Policy
    signer: TokenSigner
    dispatcher: Dispatcher
    service: ResetService
    jobs: JobRunner
    metrics: Metrics | None  # where /metrics is served (the HTTP server), else None
    clock: Clock
    approval_links: ApprovalLinks | None
    secret: str = field(repr=False)  # admin session keys are derived from it

    @property
    def bounds(self) -> CallBounds:
        """How long a call may take (tools and REST apply it)."""
        return CallBounds.of(self.settings)


@asynccontextmanager
async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    backend: EmailBackend | None = None,
    store: Store | None = None,
    kinds: Iterable[EmailKind[Any, Any]] = BUILTIN,
    approval_links: bool = False,
    metrics: bool = False,
    observers: Sequence[Observer] = (),
) -> AsyncIterator[App]:
    """The App.

    `kinds`: the email kinds it knows (the built-ins, plus any an embedding app adds);
    `approval_links`: an HTTP server will answer the signed links in the overseer's
    notice (they are left out of the email otherwise); `metrics`: count for /metrics
    (a few microseconds a delivery, so only where it is served); `observers`: told of
    every delivery outcome, after the metrics."""
    clock = clock or SystemClock()
    ensure_data_dir(settings)  # once, at start
    secret = load_or_create_secret(settings)
    registry = EmailKinds(kinds)
    policy = load_policy(settings.oversight_mode, settings.policy_file, registry.gated, settings.canon)
    composer = composer_for(settings, registry)
    links = None
    if approval_links and settings.oversight_email:
        links = ApprovalLinks(secret, settings.public_base_url, settings.oversight_email)
    signer = TokenSigner(secret, settings.fallback_secrets)
    async with AsyncExitStack() as stack:
        geo = GeoLocator(settings.geoip_db)
        stack.callback(geo.close)
        if store is None:
            store = await open_store(
                settings.effective_database_url,
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout_seconds,
                audit_key=AuditKey.current(signer),
                anchor_file=settings.audit_anchor_file,
            )
            stack.push_async_callback(store.aclose)
        await on_open(store, signer, clock, audit_key=store.audit_key)
        if backend is None:
            backend = open_email_backend(settings.mail_options())
            stack.push_async_callback(backend.aclose)
        directory = await open_directory_of(settings)
        if directory is not None:
            stack.push_async_callback(directory.aclose)
        counted = Metrics() if metrics else None
        app = _wire(
            settings, clock, secret, signer, registry, policy, composer, links, counted, geo, store, backend, observers,
            directory,
        )  # fmt: skip
        # Deliveries run in the dispatcher's task group, closed before the backend and the store.
        await stack.enter_async_context(app.dispatcher.running())
        try:
            yield app
        finally:
            await app.dispatcher.wait_idle()


def _wire(
    settings: Settings,
    clock: Clock,
    secret: str,
    signer: TokenSigner,
    kinds: EmailKinds,
    policy: Policy,
    composer: Composer,
    links: ApprovalLinks | None,
    metrics: Metrics | None,
    geo: GeoLocator,
    store: Store,
    backend: EmailBackend,
    observers: Sequence[Observer],
    directory: Directory | None = None,
) -> App:
    canon = settings.canon
    env = render_env(settings, composer, links)
    messages = MessageFactory(
        kinds, env, signer, from_address=settings.from_address, from_name=settings.sender_name or settings.product_name
    )
    dispatcher = Dispatcher(
        store,
        backend,
        messages,
        clock,
        retry=RetryPolicy(
            settings.delivery_max_attempts, settings.delivery_backoff_seconds, settings.delivery_backoff_max_seconds
        ),
        lease_seconds=settings.delivery_lease_seconds,
        observers=(metrics.on_delivered, *observers) if metrics else observers,
        canon=canon,
    )
    deps = Deps(
        store=store,
        clock=clock,
        policy=policy,
        kinds=kinds,
        signer=signer,
        dispatcher=dispatcher,
        releaser=Releaser(dispatcher, signer, settings.token_ttl_minutes, settings.oversight_timezone, canon),
        geo=geo,
        rules=AbuseRules(
            account_per_hour=settings.rate_limit_account_per_hour, ip_per_hour=settings.rate_limit_ip_per_hour
        ),
        ttl_minutes=settings.token_ttl_minutes,
        approval_window=timedelta(minutes=settings.effective_approval_window_minutes),
        overseer_email=settings.oversight_email,
        canon=canon,
        max_pending=settings.max_pending_per_caller,
        send_wait=settings.send_wait_seconds,
        directory=directory,
        caller_sends_per_hour=settings.caller_sends_per_hour,
        answer_step=settings.directory_answer_step_ms / 1000,
    )
    service = ResetService(deps)
    jobs = JobRunner(
        dispatcher,
        service.approvals,
        store,
        clock,
        poll_seconds=settings.worker_poll_seconds,
        retention_days=settings.retention_days,
        digest=OverseerDigest(deps) if settings.oversight_email else None,
    )
    return App(
        settings, store, backend, kinds, composer, messages, policy, signer, dispatcher, service, jobs, metrics,
        clock, links, secret,
    )  # fmt: skip


@asynccontextmanager
async def app_with_jobs(
    settings: Settings, *, freeze_heap: bool = False, approval_links: bool = False, metrics: bool = False
) -> AsyncIterator[App]:
    """The App plus its job runner, as a serving process runs it.

    `freeze_heap` (for `serve`, which owns its process): once everything is loaded, move
    the modules', schemas' and templates' objects out of the cyclic garbage collector's
    reach (`gc.freeze`), so its full collections stop traversing them (bench/README.md).
    Not for an App embedded in someone else's process, whose heap is not ours to freeze.
    """
    async with (
        build_app(settings, approval_links=approval_links, metrics=metrics) as app,
        anyio.create_task_group() as tg,
    ):
        app.composer.preload()  # every locale's templates now, so no request pays for them
        if freeze_heap:
            gc.collect()  # what is garbage now is not frozen
            gc.freeze()
        if not settings.has_directory:
            log.warning(NO_DIRECTORY_WARNING)
        outbox = f" (outbox folder {settings.effective_outbox_dir.resolve()})" if app.backend.name == "outbox" else ""
        log.info(
            "reset-mcp %s: database %s; email backend %s%s; oversight %s",
            __version__, app.store.url_for_display, app.backend.name, outbox, settings.oversight_mode,
        )  # fmt: skip
        done = anyio.Event()

        async def run_jobs() -> None:
            try:
                await app.jobs.run()
            finally:
                done.set()

        tg.start_soon(run_jobs)
        try:
            yield app
        finally:
            # A graceful stop lets the deliveries in flight finish (bounded): cancelling them
            # mid-send would leave rows `sending`, to be sent again by the next start.
            app.jobs.stop()
            try:
                with anyio.move_on_after(STOP_SECONDS):
                    await done.wait()
            finally:
                tg.cancel_scope.cancel()
