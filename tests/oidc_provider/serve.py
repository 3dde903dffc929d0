"""Run the test identity provider: `python -m tests.oidc_provider.serve PORT`.

Its database is made afresh, with the people (PROVIDER_PEOPLE: a JSON list of
`{"username", "password", "email", "groups"}`) and one confidential client
(PROVIDER_CLIENT_ID, PROVIDER_CLIENT_SECRET) allowed to send people back to /oidc/callback/ on
127.0.0.1 or localhost (any port, as for loopback addresses) or on Django's test client host.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.oidc_provider.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oauth2_provider.models import Application  # noqa: E402

REDIRECTS = " ".join(f"http://{host}/oidc/callback/" for host in ("127.0.0.1", "localhost", "testserver"))


def populate() -> None:
    call_command("migrate", verbosity=0)
    for person in json.loads(os.environ["PROVIDER_PEOPLE"]):
        user = User.objects.create_user(person["username"], person["email"], person["password"])
        for name in person.get("groups", []):
            user.groups.add(Group.objects.get_or_create(name=name)[0])
    Application.objects.create(
        name="Recipe Playground",
        client_id=os.environ["PROVIDER_CLIENT_ID"],
        client_secret=os.environ["PROVIDER_CLIENT_SECRET"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECTS,
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


if __name__ == "__main__":
    populate()
    call_command("runserver", f"127.0.0.1:{sys.argv[1]}", use_reloader=False, skip_checks=True)
