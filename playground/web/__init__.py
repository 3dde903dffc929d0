"""The web layer: views, forms, middleware and chart geometry; no run logic of its own."""
