"""The composition root: settings in, a running `App` out. The only place parts are wired."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from reset_mcp.clock import Clock, SystemClock
from reset_mcp.compose import Composer
from reset_mcp.compose.models import Branding
from reset_mcp.config import MIN_SECRET_BYTES, Settings
from reset_mcp.context import GeoLocator
from reset_mcp.deps import Deps
from reset_mcp.emails.outgoing import MessageFactory
from reset_mcp.errors import ConfigError
from reset_mcp.flows.reset import ResetService
from reset_mcp.mail import EmailBackend, open_email_backend
from reset_mcp.outbox.dispatcher import Dispatcher, RetryPolicy
from reset_mcp.outbox.release import Releaser
from reset_mcp.policy.abuse import AbuseRules
from reset_mcp.policy.oversight import Policy, load_policy
from reset_mcp.store import Store, open_store
from reset_mcp.tokens import TokenSigner

log = logging.getLogger("reset_mcp")
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


def load_or_create_secret(settings: Settings) -> str:
    """RESET_MCP_SECRET, else the key file in the data dir, else a new one written 0600."""
    if settings.secret is not None:
        return settings.secret.get_secret_value()
    path = Path(settings.data_dir) / SECRET_FILE
    if path.exists():
        secret = path.read_text(encoding="utf-8").strip()
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"{path}: the stored key is shorter than {MIN_SECRET_BYTES} bytes")
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race; use its key
        return path.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    log.warning("RESET_MCP_SECRET is not set: generated a signing key in %s (mode 0600)", path)
    return secret


def branding(settings: Settings) -> Branding:
    return Branding(
        product_name=settings.product_name,
        sender_name=settings.sender_name,
        logo_url=settings.logo_url,
        primary_color=settings.primary_color,
        support_url=settings.support_url,
        support_email=settings.support_email,
        postal_address=settings.postal_address,
    )


@dataclass(slots=True)
class App:
    settings: Settings
    store: Store
    backend: EmailBackend
    composer: Composer
    policy: Policy
    signer: TokenSigner
    dispatcher: Dispatcher
    service: ResetService
    clock: Clock


@asynccontextmanager
async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    backend: EmailBackend | None = None,
    store: Store | None = None,
) -> AsyncIterator[App]:
    clock = clock or SystemClock()
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, at start
    signer = TokenSigner(load_or_create_secret(settings), settings.fallback_secrets)
    policy = load_policy(settings.oversight_mode, settings.policy_file)
    composer = Composer(branding(settings), settings.template_dir)
    async with AsyncExitStack() as stack:
        geo = GeoLocator(settings.geoip_db)
        stack.callback(geo.close)
        if store is None:
            store = await open_store(
                settings.effective_database_url,
                pool_size=settings.db_pool_size,
                pool_timeout=settings.db_pool_timeout_seconds,
            )
            stack.push_async_callback(store.aclose)
        if backend is None:
            backend = open_email_backend(settings)
            stack.push_async_callback(backend.aclose)
        app = _wire(settings, clock, signer, policy, composer, geo, store, backend)
        try:
            yield app
        finally:
            await app.dispatcher.wait_idle()


def _wire(
    settings: Settings,
    clock: Clock,
    signer: TokenSigner,
    policy: Policy,
    composer: Composer,
    geo: GeoLocator,
    store: Store,
    backend: EmailBackend,
) -> App:
    messages = MessageFactory(
        composer,
        signer,
        reset_url=settings.reset_url,
        report_url=settings.report_url,
        from_address=settings.from_address,
        from_name=settings.sender_name or settings.product_name,
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
    )
    deps = Deps(
        store=store,
        clock=clock,
        policy=policy,
        signer=signer,
        dispatcher=dispatcher,
        releaser=Releaser(dispatcher, signer, settings.token_ttl_minutes),
        geo=geo,
        rules=AbuseRules(
            account_per_hour=settings.rate_limit_account_per_hour, ip_per_hour=settings.rate_limit_ip_per_hour
        ),
        ttl_minutes=settings.token_ttl_minutes,
        approval_window=timedelta(minutes=settings.effective_approval_window_minutes),
        overseer_email=settings.oversight_email,
    )
    service = ResetService(deps)
    dispatcher.on_expire_approvals = service.approvals.expire_due
    return App(settings, store, backend, composer, policy, signer, dispatcher, service, clock)
