"""The peer: Django's `PasswordResetForm.save()` with its SMTP backend, one reset at a time.

Run by `bench/django_row.py` with the Python of `bench/.venv-django` (Django 5.2 from
PyPI); it imports nothing from reset_mcp. Arguments: a work folder holding the templates
(`templates/bench/reset.txt`, `reset.html`, `subject.txt`, written by the parent at the
size of reset-mcp's own rendered email), the sink's SMTP port and the number of resets.
Each reset targets its own active user (looked up by email, as Django does), renders the
subject, text and HTML templates, mints Django's token and sends text + HTML through
`django.core.mail.backends.smtp.EmailBackend` (a new SMTP connection per message: that is
what `PasswordResetForm.send_mail` does). Prints one JSON object: recipient -> start time
(CLOCK_MONOTONIC, the clock the sink stamps with) and per-save durations.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def configure(workdir: Path, smtp_port: int) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-" + "x" * 50,
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(workdir / "django.sqlite3"),
                "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            }
        },
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [str(workdir / "templates")],
                "APP_DIRS": True,
                "OPTIONS": {"debug": False},
            }
        ],
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=smtp_port,
        EMAIL_USE_TLS=False,
        DEFAULT_FROM_EMAIL="Bench <auth@bench.example.com>",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # only to create users fast
        PASSWORD_RESET_TIMEOUT=15 * 60,
    )
    django.setup()
    # Django names the Message-ID after the host's FQDN, looked up once; no DNS here.
    from django.core.mail import utils

    utils.DNS_NAME._fqdn = "bench.example.com"  # type: ignore[attr-defined]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("-n", type=int, default=500)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--tag", default="django")
    args = p.parse_args()
    configure(args.workdir, args.smtp_port)

    import django
    from django.contrib.auth.forms import PasswordResetForm
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    total = args.n + args.warmup
    password = make_password("bench-password")
    User.objects.bulk_create(
        [
            User(username=f"{args.tag}-{i}", email=f"{args.tag}-{i}@bench.example.com", password=password)
            for i in range(total)
        ],
        batch_size=1000,
    )

    def reset(email: str) -> None:
        form = PasswordResetForm({"email": email})
        if not form.is_valid():
            raise SystemExit(f"form invalid: {form.errors}")
        form.save(
            domain_override="bench.example.com",
            use_https=True,
            subject_template_name="bench/subject.txt",
            email_template_name="bench/reset.txt",
            html_email_template_name="bench/reset.html",
            from_email="Bench <auth@bench.example.com>",
        )

    for i in range(args.warmup):
        reset(f"{args.tag}-{args.n + i}@bench.example.com")
    starts: dict[str, float] = {}
    durations: list[float] = []
    t0 = time.monotonic()
    for i in range(args.n):
        email = f"{args.tag}-{i}@bench.example.com"
        started = time.monotonic()
        starts[email] = started
        reset(email)
        durations.append(time.monotonic() - started)
    elapsed = time.monotonic() - t0
    json.dump(
        {"django": django.get_version(), "t0": t0, "elapsed": elapsed, "starts": starts, "durations": durations},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
