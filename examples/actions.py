"""Demo actions that simulate AI agents and business systems, with token usage.

They are deterministic (derived from their inputs), so examples and tests can assert on them.
"""
import hashlib
import time

from orchestration.actions import action
from orchestration.actions.registry import ActionError


def _tokens(*parts):
    text = " ".join(str(p) for p in parts)
    return max(1, len(text) // 4)


def _simulate(ctx, model, prompt, work_seconds=0.0):
    if work_seconds:
        time.sleep(work_seconds)
        ctx.heartbeat()
    tokens_in = _tokens(prompt) + 50
    tokens_out = 20 + tokens_in // 3
    ctx.report_usage(tokens_in=tokens_in, tokens_out=tokens_out, model=model)
    return hashlib.sha256(str(prompt).encode()).hexdigest()[:8]


@action("demo.agent", description="A simulated LLM agent: answers a task, reports tokens.")
def agent(ctx, *, task="", role="assistant", model="gpt-4o-mini", work_seconds=0.0, **extra):
    digest = _simulate(ctx, model, f"{role}: {task} {extra}", float(work_seconds))
    return {"role": role, "answer": f"{role} handled: {task}", "ref": digest}


@action("demo.plan", description="Break a feature into tasks.")
def plan(ctx, *, feature="feature", parts=3, model="gpt-4o-mini"):
    _simulate(ctx, model, feature)
    return {"feature": feature, "tasks": [f"{feature} / part {i + 1}" for i in range(int(parts))]}


@action("demo.code", description="Write code for one task.")
def code(ctx, *, task="", model="gpt-4o-mini", work_seconds=0.0):
    digest = _simulate(ctx, model, task, float(work_seconds))
    return {"task": task, "commit": digest, "lines": 10 + len(str(task))}


@action("demo.review", description="Review a change; approves unless the diff mentions 'bug'.")
def review(ctx, *, diff="", model="gpt-4o-mini"):
    _simulate(ctx, model, diff)
    verdict = "reject" if "bug" in str(diff).lower() else "approve"
    return {"verdict": verdict, "comments": [] if verdict == "approve" else ["found a bug"]}


@action("demo.merge", description="Merge a change; returns the merge sha.")
def merge(ctx, *, change="", fail=False):
    if fail:
        raise ActionError("merge conflict")
    return {"sha": hashlib.sha1(str(change).encode()).hexdigest()[:12], "merged": True}


@action("demo.deploy", description="Deploy a build to an environment.")
def deploy(ctx, *, version="", environment="staging", fail=False):
    if fail:
        raise ActionError(f"deployment of {version} to {environment} failed health checks")
    return {"environment": environment, "version": version, "url": f"https://{environment}.example.test"}


@action("demo.revert", description="Undo a merge or deployment (saga compensation).")
def revert(ctx, **target):
    return {"reverted": target}


@action("demo.charge", description="Charge a customer (a saga step).")
def charge(ctx, *, amount=0, customer="acme"):
    return {"charge_id": hashlib.sha1(f"{customer}:{amount}".encode()).hexdigest()[:10], "amount": amount}


@action("demo.refund", description="Refund a charge (compensation).")
def refund(ctx, *, charge_id="", amount=0):
    return {"refunded": charge_id, "amount": amount}


@action("demo.reserve", description="Reserve stock (a saga step).")
def reserve(ctx, *, sku="", quantity=1):
    return {"reservation": f"{sku}x{quantity}"}


@action("demo.release", description="Release a reservation (compensation).")
def release(ctx, *, reservation=""):
    return {"released": reservation}


@action("demo.summarize", description="Merge several results into one summary.")
def summarize(ctx, *, results=None, model="gpt-4o-mini"):
    results = results or []
    _simulate(ctx, model, results)
    return {"count": len(results), "summary": "; ".join(str(r) for r in results)[:500]}
