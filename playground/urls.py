from django.urls import path

from playground import views

urlpatterns = [
    path("", views.shelf, name="shelf"),
    path("recipes/<slug:slug>/", views.recipe_page, name="recipe"),
    path("recipes/<slug:slug>/run", views.recipe_run, name="recipe-run"),
    path("recipes/<slug:slug>/compare", views.recipe_compare, name="recipe-compare"),
    path("api/recipes", views.api_recipes, name="api-recipes"),
    path("api/recipes/<slug:slug>/run", views.api_run, name="api-run"),
    path("sandbox/reset", views.sandbox_reset, name="sandbox-reset"),
    path("healthz", views.healthz, name="healthz"),
]
