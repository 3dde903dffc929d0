"""Refusals a sandbox gives when a limit of the instance is hit; each carries its HTTP status."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playground.sandbox.servers import Server

RETRY_SERVER = 15
"""Retry-After (s) when a sandbox server does not answer: a restart takes seconds."""


class SandboxLimitError(Exception):
    """A limit of the instance was hit (as many sandboxes as allowed); `status` is the HTTP one."""

    status = 503

    def __init__(self, message: str = "", *, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        """Seconds after which asking again may work, when the refusal knows (else a default)."""


class SandboxBusyError(SandboxLimitError):
    """Every run slot of this process is taken."""


class SandboxesPerClientError(SandboxLimitError):
    """The client's address already holds as many sandboxes as one address may."""

    status = 429


class SandboxQuotaError(SandboxLimitError):
    """The sandbox's tables take more space than its quota allows."""

    status = 507


class SandboxServerDownError(SandboxLimitError):
    """The server holding the sandbox does not answer; sandboxes on other servers still work."""

    @classmethod
    def of(cls, server: Server) -> SandboxServerDownError:
        return cls(
            f"The database is not answering right now (PostgreSQL {server.version}, sandbox server "
            f"{server.name}, which holds this sandbox; it may be restarting). Sandboxes on other "
            "servers are not affected; nothing was run. Try again in a few seconds.",
            retry_after=RETRY_SERVER,
        )
