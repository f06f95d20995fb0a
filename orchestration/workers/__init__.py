"""Worker liveness: each worker's main process beats a row, and a dead worker's steps are recovered
in seconds (services.py explains how, and the worst case)."""
