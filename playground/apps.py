from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.core.signals import request_started


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
