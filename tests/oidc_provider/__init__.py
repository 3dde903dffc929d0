"""A real OpenID Connect provider for the sign-in tests: django-oauth-toolkit with OIDC on, in a
Django project of its own (its own sqlite database, its own cookies), run by `serve` as a
subprocess on a free port. `Provider` starts it and signs a person in the way a browser would."""
