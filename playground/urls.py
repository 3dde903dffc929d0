from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from playground.web import (
    compare_versions,
    explore,
    export,
    learn,
    oidc,
    room_host,
    rooms,
    snapshots,
    sql,
    status,
    tracks,
    views,
)
from playground.web.respond import refusals

# Django's own sign-in views read and write the session: they refuse like every other view.
login = refusals()(auth_views.LoginView.as_view())
logout = refusals()(auth_views.LogoutView.as_view())

urlpatterns = [
    path("", views.shelf, name="shelf"),
    path("recipes/<slug:slug>/", views.recipe_page, name="recipe"),
    path("recipes/<slug:slug>/run", views.recipe_run, name="recipe-run"),
    path("recipes/<slug:slug>/compare", views.recipe_compare, name="recipe-compare"),
    path("recipes/<slug:slug>/versions", compare_versions.recipe_versions, name="recipe-versions"),
    path("recipes/<slug:slug>/sweep", explore.recipe_sweep, name="recipe-sweep"),
    path("recipes/<slug:slug>/sweep/snapshot", snapshots.sweep_snapshot, name="sweep-snapshot"),
    path("recipes/<slug:slug>/predict", learn.recipe_predict, name="recipe-predict"),
    path("recipes/<slug:slug>/challenge", learn.recipe_challenge, name="recipe-challenge"),
    path("tracks/", tracks.track_list, name="tracks"),
    path("tracks/<slug:slug>/", tracks.track_page, name="track"),
    path("tracks/<slug:slug>/export", export.track_export, name="track-export"),
    path("tracks/<slug:slug>/<int:number>/", tracks.track_step, name="track-step"),
    path("tracks/<slug:slug>/<int:number>/run", tracks.track_step_run, name="track-step-run"),
    path("rooms/new", rooms.room_new, name="room-new"),
    path("rooms/join", rooms.room_join, name="room-join"),
    path("rooms/host/<str:token>/", room_host.room_host, name="room-host"),
    path("rooms/host/<str:token>/push", room_host.room_push, name="room-push"),
    path("rooms/host/<str:token>/prepare", room_host.room_prepare, name="room-prepare"),
    path("rooms/host/<str:token>/reset", room_host.room_reset, name="room-reset"),
    path("rooms/host/<str:token>/close", room_host.room_close, name="room-close"),
    path("rooms/<str:code>/", rooms.room_page, name="room"),
    path("rooms/<str:code>/go", rooms.room_go, name="room-go"),
    path("sql/", sql.sql_page, name="sql"),
    path("sql/run", sql.sql_run, name="sql-run"),
    path("history", explore.history, name="history"),
    path("runs/<int:run_id>/", explore.run_detail, name="run"),
    path("runs/diff", explore.run_diff, name="run-diff"),
    path("runs/snapshot", snapshots.compare_snapshot, name="compare-snapshot"),
    path("runs/export", export.runs_export, name="runs-export"),
    path("runs/<int:run_id>/export", export.run_export, name="run-export"),
    path("runs/<int:run_id>/plan.json", export.run_plan, name="run-plan"),
    path("runs/<int:run_id>/snapshot", snapshots.run_snapshot, name="run-snapshot"),
    path("snapshots/<str:token>/", snapshots.snapshot, name="snapshot"),
    path("api/recipes", views.api_recipes, name="api-recipes"),
    path("api/recipes/<slug:slug>/run", views.api_run, name="api-run"),
    path("api/recipes/<slug:slug>/predict", learn.api_predict, name="api-predict"),
    path("api/recipes/<slug:slug>/challenge", learn.api_challenge, name="api-challenge"),
    path("api/tracks", tracks.api_tracks, name="api-tracks"),
    path("api/tracks/<slug:slug>/<int:number>/run", tracks.api_track_step, name="api-track-step"),
    path("sandbox/reset", views.sandbox_reset, name="sandbox-reset"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/login/", login, name="login"),
    path("accounts/logout/", logout, name="logout"),
    path("oidc/authenticate/", oidc.authenticate, name="oidc_authentication_init"),
    path("oidc/callback/", oidc.callback, name="oidc_authentication_callback"),
    path("operator/", status.status, name="operator-status"),
    path("operator/reap", status.reap_now, name="operator-reap"),
    path("admin/", admin.site.urls),
]

# API clients get their errors as JSON wherever the error happens (see playground.web.respond).
handler400 = "playground.web.respond.bad_request"
handler404 = "playground.web.respond.not_found"
handler500 = "playground.web.respond.server_error"
