"""The verbs of `manage.py dac` (DESIGN §8), one module per area; each calls services only."""
