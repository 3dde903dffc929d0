from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.core.signals import request_started
from django.db.backends.signals import connection_created


class PlaygroundConfig(AppConfig):
    name = "playground"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from playground import checks  # noqa: F401  (registers the recipe contract's system checks)
        from playground.running import people
        from playground.sandbox import reaper

        # On a request, not at import: gunicorn's master imports the app and forks the workers,
        # and a thread does not survive a fork; management commands serve no request at all.
        request_started.connect(reaper.start_in_this_process, dispatch_uid="playground-reaper")
        # Signed in, the sandbox and progress are the person's in any browser (running/people.py).
        user_logged_in.connect(people.adopt, dispatch_uid="playground-adopt")
        connection_created.connect(commit_without_waiting, dispatch_uid="playground-app-commits")


def commit_without_waiting(sender, connection, **kwargs) -> None:
    """Let the app database's commits return before their WAL reaches the disk.

    Every run writes three rows of bookkeeping (the run allowance, the sandbox's last use, the
    stored run), each its own commit; waiting for the WAL flush of each took 3 to 5 ms on a busy
    disk, most of what the playground added to a run (docs/performance.md), and far longer while
    a heavy run filled the WAL. With `synchronous_commit = off` a crash of the server can lose
    the last fraction of a second of such commits, never corrupt anything. Only the app
    database's own sessions are affected: a sandbox's commits, which recipes time, still wait
    for the disk as on any server. PLAYGROUND_APP_SYNCHRONOUS_COMMIT=on keeps the default.
    """
    from playground.conf import setting

    if connection.vendor == "postgresql" and setting("APP_SYNCHRONOUS_COMMIT") != "on":
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
