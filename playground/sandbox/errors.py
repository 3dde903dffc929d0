"""Refusals a sandbox gives when a limit of the instance is hit; each carries its HTTP status."""

from __future__ import annotations


class SandboxLimitError(Exception):
    """A limit of the instance was hit (as many sandboxes as allowed); `status` is the HTTP one."""

    status = 503


class SandboxBusyError(SandboxLimitError):
    """Every run slot of this process is taken."""


class SandboxQuotaError(SandboxLimitError):
    """The sandbox's tables take more space than its quota allows."""

    status = 507
