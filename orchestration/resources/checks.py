"""Start-up checks: a malformed limit setting stops `manage.py` and the workers with its name."""
from django.conf import settings
from django.core.checks import Error, register


@register("dac")  # the tag `manage.py dac` runs (with every check, as untagged ones, everywhere else)
def resource_settings(app_configs, **kwargs):
    errors = []
    for name in ("DAC_RATE_LIMITS", "DAC_MAX_RUNNING_PER_TYPE"):
        text = getattr(settings, name)
        if not (text or "").strip():
            continue  # unset: nothing to parse, so the spec package is not imported (start-up time)
        from registry.spec.resources import parse_env_rate_limits, parse_env_type_limits

        parse = parse_env_rate_limits if name == "DAC_RATE_LIMITS" else parse_env_type_limits
        try:
            parse(text)
        except ValueError as exc:
            errors.append(Error(str(exc), id=f"dac.{name}"))
    for name in ("DAC_MAX_RUNNING", "DAC_TOKEN_QUOTA_PER_HOUR"):
        if getattr(settings, name) < 0:
            errors.append(Error(f"{name} must be 0 (no limit) or a positive integer", id=f"dac.{name}"))
    return errors
