"""`python -m bench.worker KEY=VALUE ... -- <celery worker options>`: a worker of the dacproject app
with Celery settings overridden, for the bench's what-if runs (`bench/run.py --worker-conf`).

Nothing in the project changes: the overrides live in this process only. Values are JSON when
they parse as JSON (`CELERY_DB_REUSE_MAX=1000`), else strings.
"""
import json
import sys


def main(argv):
    split = argv.index("--") if "--" in argv else len(argv)
    overrides, options = argv[:split], argv[split + 1:]
    from dacproject.celery import app

    for pair in overrides:
        key, _, raw = pair.partition("=")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        app.conf[key] = value
    app.worker_main(["worker", *options])


if __name__ == "__main__":
    main(sys.argv[1:])
