"""The retention policy as code: model, loader, clock and planner."""
