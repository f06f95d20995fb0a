"""Notifications (DESIGN §7.3): webhook and email messages about escalations, each delivery recorded."""
