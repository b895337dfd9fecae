"""One router per resource: predictions, health, model, admin, metrics."""
