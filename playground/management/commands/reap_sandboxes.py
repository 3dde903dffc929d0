from __future__ import annotations

from django.core.management.base import BaseCommand

from playground import sandbox


class Command(BaseCommand):
    help = (
        "Drop sandboxes (schema, role, registry row) idle for longer than they may be. Every web "
        "process already does this on its own (PLAYGROUND_REAP_EVERY_SECONDS); this is for a "
        "deployment that switched that off, or to reap now."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--idle-seconds",
            type=int,
            default=None,
            help="Drop every sandbox idle this long, whatever its use (default: the settings' rule).",
        )

    def handle(self, *args, idle_seconds=None, **options):
        # Waits while a web process is reaping, then takes its turn.
        dropped = sandbox.reap_once(wait=True, idle_seconds=idle_seconds).dropped
        for role in dropped:
            self.stdout.write(f"dropped {role}")
        self.stdout.write(self.style.SUCCESS(f"{len(dropped)} sandbox(es) reaped"))
