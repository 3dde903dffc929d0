from __future__ import annotations

from django.db import models


class Sandbox(models.Model):
    """A private schema and login role in the sandbox database, owned by one browser session."""

    role = models.CharField(max_length=63, unique=True)
    """Name of both the login role and its schema."""
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return self.role


class Run(models.Model):
    """One run of a recipe in a sandbox, kept for the session's history."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="runs")
    recipe = models.CharField(max_length=64)
    variant = models.CharField(max_length=64)
    params = models.JSONField()
    ok = models.BooleanField()
    query_count = models.PositiveIntegerField()
    elapsed_ms = models.FloatField()
    db_ms = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.recipe}/{self.variant}"
