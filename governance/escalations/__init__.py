"""Escalations (DESIGN §7.1): approval gates, reviews and interventions that humans decide."""
