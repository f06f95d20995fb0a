"""One Redis client per process for the DAC's own keys: caches and change signals (Celery's
messages use their own connections). redis-py's pool reconnects after a fork, so prefork
workers may share the module."""
import redis
from django.conf import settings

RedisError = redis.RedisError
_client = None


def client():
    global _client
    if _client is None:
        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    return _client
