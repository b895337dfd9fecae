"""Monitoring: drift reports, the prediction log and the request windows drawn from it."""
