from __future__ import annotations

from django.core.management.base import BaseCommand

from playground import sandbox


class Command(BaseCommand):
    help = "Drop sandboxes (schema, role, registry row) idle for longer than the configured time."

    def add_arguments(self, parser):
        parser.add_argument(
            "--idle-seconds",
            type=int,
            default=None,
            help="Override PLAYGROUND['SANDBOX_IDLE_SECONDS'] for this run.",
        )

    def handle(self, *args, idle_seconds=None, **options):
        dropped = sandbox.reap(idle_seconds)
        for role in dropped:
            self.stdout.write(f"dropped {role}")
        self.stdout.write(self.style.SUCCESS(f"{len(dropped)} sandbox(es) reaped"))
