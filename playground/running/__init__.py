"""Running a recipe: capture, the runner, the run allowance, and what a session asks for."""
