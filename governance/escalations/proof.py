"""Approval proof (DESIGN §7.1): digests of what an approver was shown."""
import hashlib
import json


def digest(value):
    """sha256 of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def inputs_digest(shown):
    """The proof a gated step checks before it runs: sha256 of the resolved inputs its approvers
    were shown (None for what has no inputs of its own: foreach items, children, waits)."""
    return digest(shown["inputs"]) if "inputs" in shown else None


def shown_digest(escalation):
    """What a decision records: the escalation's context (the step's resolved inputs and why it was raised)."""
    return digest(escalation.context)
