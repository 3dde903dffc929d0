"""Django's admin as the operator's view: sandboxes, rooms, recent runs and the log of what staff
did. It is for staff only (Django's own rule for the admin); the figures the instance is sized by
are on the status page it links to (`playground.web.status`).

Nothing here writes to the sandbox server by hand: dropping a sandbox and closing a room go
through `playground.ops.actions`, which logs each one. Rows are read-only, since the site keeps
them consistent with the sandbox server (a registry row edited by hand would no longer match its
role).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html
from sqlalchemy import text

from playground import sandbox
from playground.models import OperatorAction, Room, Run, Sandbox
from playground.ops import actions

admin.site.site_header = "Recipe Playground: operator's view"
admin.site.site_title = "Recipe Playground operator"
admin.site.index_template = "admin/playground_index.html"
# Rows are removed by the actions below, which also remove what they stand for on the sandbox
# server: a registry row deleted alone would leave its role and schema behind.
admin.site.disable_action("delete_selected")


class ReadOnly(admin.ModelAdmin):
    """Rows the site keeps: staff look and act through the actions, never edit a field."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


_SIZES = """
SELECT n.nspname, coalesce(sum(c.relpages::bigint), 0) * current_setting('block_size')::bigint
FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid
WHERE n.nspname = ANY(:roles) GROUP BY n.nspname
"""


def schema_sizes(roles: list[str]) -> dict[str, int]:
    """Role → bytes its schema takes, as the catalog counts pages: one query for a whole page of
    sandboxes, and no table lock (a sandbox in the middle of a run is not waited for)."""
    if not roles:
        return {}
    with sandbox.admin_engine().connect() as conn:
        return {name: int(size) for name, size in conn.execute(text(_SIZES), {"roles": roles})}


class SandboxChangeList(ChangeList):
    def get_results(self, request) -> None:
        super().get_results(request)
        sizes = schema_sizes([box.role for box in self.result_list])
        for box in self.result_list:
            box.size = sizes.get(box.role)


@admin.register(Sandbox)
class SandboxAdmin(ReadOnly):
    list_display = ("role", "owner", "client", "size", "runs_kept", "uses", "last_used_at", "created_at")
    list_select_related = ("owner",)
    search_fields = ("role", "owner__username", "client")
    ordering = ("-last_used_at",)
    actions = ["drop_sandboxes"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(runs_kept=Count("runs"))

    def get_changelist(self, request, **kwargs):
        return SandboxChangeList

    @admin.display(description="size")
    def size(self, box: Sandbox) -> str:
        size = getattr(box, "size", None)
        return "–" if size is None else f"{size / 2**20:,.1f} MB"

    @admin.display(description="runs kept", ordering="runs_kept")
    def runs_kept(self, box: Sandbox) -> int:
        return box.runs_kept

    @admin.action(
        description="Drop the selected sandboxes (their tables and runs go)", permissions=["delete"]
    )
    def drop_sandboxes(self, request, queryset) -> None:
        boxes = list(queryset)
        for box in boxes:
            actions.drop_sandbox(request.user, box)
        self.message_user(request, f"Dropped {len(boxes)} sandbox(es).", messages.SUCCESS)


@admin.register(Room)
class RoomAdmin(ReadOnly):
    list_display = ("name", "code", "owner", "track", "members_count", "is_open", "created_at", "expires_at")
    list_select_related = ("owner",)
    search_fields = ("name", "code")
    ordering = ("-created_at",)
    exclude = ("host_token",)
    actions = ["close_rooms"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(members_count=Count("members"))

    @admin.display(description="members", ordering="members_count")
    def members_count(self, room: Room) -> int:
        return room.members_count

    @admin.display(description="open", boolean=True)
    def is_open(self, room: Room) -> bool:
        return room.expires_at > timezone.now()

    @admin.action(
        description="Close the selected rooms (their members' sandboxes go)", permissions=["delete"]
    )
    def close_rooms(self, request, queryset) -> None:
        rooms = list(queryset)
        for room in rooms:
            actions.close_room(request.user, room)
        self.message_user(request, f"Closed {len(rooms)} room(s).", messages.SUCCESS)


@admin.register(Run)
class RunAdmin(ReadOnly):
    list_display = ("created_at", "recipe", "variant", "sandbox", "ok", "query_count", "elapsed_ms")
    list_filter = ("ok", "recipe")
    list_select_related = ("sandbox",)
    date_hierarchy = "created_at"
    exclude = ("result",)

    def get_queryset(self, request):
        return super().get_queryset(request).defer("result")


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnly):
    list_display = ("at", "username", "action", "target", "what_came_of_it")
    list_filter = ("action",)
    search_fields = ("username", "target")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the record of what staff did is not staff's to erase

    @admin.display(description="detail")
    def what_came_of_it(self, row: OperatorAction) -> str:
        return format_html("<code>{}</code>", row.detail) if row.detail else ""
