"""Start-up checks: a malformed limit setting stops `manage.py` and the workers with its name."""
from django.conf import settings
from django.core.checks import Error, register

from registry.spec.resources import parse_env_rate_limits, parse_env_type_limits


@register()
def resource_settings(app_configs, **kwargs):
    errors = []
    parsers = ((parse_env_rate_limits, "DAC_RATE_LIMITS"), (parse_env_type_limits, "DAC_MAX_RUNNING_PER_TYPE"))
    for parse, name in parsers:
        try:
            parse(getattr(settings, name))
        except ValueError as exc:
            errors.append(Error(str(exc), id=f"dac.{name}"))
    for name in ("DAC_MAX_RUNNING", "DAC_TOKEN_QUOTA_PER_HOUR"):
        if getattr(settings, name) < 0:
            errors.append(Error(f"{name} must be 0 (no limit) or a positive integer", id=f"dac.{name}"))
    return errors
