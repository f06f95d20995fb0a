"""The registry's change number in Redis. Every `dac apply` bumps it after it commits, so each
process's caches of what is registered (governance policies, the limits in force, the discovery
corpus) reload on their next read, everywhere. Without Redis there is no number (None): callers
then read PostgreSQL every time, which is correct, only slower.
"""
import logging

from dacproject.redis_client import RedisError
from dacproject.redis_client import client as redis_client

logger = logging.getLogger(__name__)

# Named after its first user; kept so that a running deployment keeps its number.
REGISTRY_VERSION_KEY = "dac:governance:policy-version"


def registry_version():
    """The current change number (bytes), started at 0 on a fresh Redis; None without Redis."""
    try:
        version = redis_client().get(REGISTRY_VERSION_KEY)
        if version is None:
            redis_client().set(REGISTRY_VERSION_KEY, 0, nx=True)
            version = redis_client().get(REGISTRY_VERSION_KEY)
    except RedisError:
        return None
    return version


def registry_changed():
    """After an apply committed: every process reloads what it cached of the registry."""
    try:
        redis_client().incr(REGISTRY_VERSION_KEY)
    except RedisError:
        logger.warning("could not signal a registry change; processes keep their caches until Redis answers")
