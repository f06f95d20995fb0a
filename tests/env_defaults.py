"""Loaded with `-p` before Django starts: test-only defaults for the environment.

Tests use their own Redis database so they never consume a running development stack's
messages; the worker processes the suite starts inherit the same variables.
"""
import os

os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("DAC_SECRET_TEST_TOKEN", "s3cr3t-test-token-value")
os.environ.setdefault("DAC_PYTHON_ACTION_ALLOWLIST", "tests.support.pyactions")
os.environ.setdefault("DAC_SWEEP_INTERVAL_SECONDS", "1")
