"""Agent registrations (seed 004 §2.1 shape) normalised to {name, type, risk, capabilities}."""
from registry.models import AgentRisk, AgentType

from .checker import Checker


def normalize_agent(raw, sink, where):
    if not isinstance(raw, dict):
        sink.error("an agent must be a mapping", field=where)
        return None
    c = Checker(sink, raw, prefix=f"{where}.")
    c.unknown_fields({"name", "type", "description", "risk", "riskLevel", "capabilities", "entryPath", "version"})
    name = c.get("name", str)
    if not name:
        c.error("name", "is required")
        return None
    kind = c.choice("type", AgentType.values, default=AgentType.RULE)
    risk = c.choice("riskLevel" if "riskLevel" in raw else "risk", AgentRisk.values, default=AgentRisk.AUTO)
    capabilities = {}
    raw_caps = raw.get("capabilities") or []
    if isinstance(raw_caps, dict):
        raw_caps = [{"name": k, **(v or {})} for k, v in raw_caps.items()]
    if not isinstance(raw_caps, list):
        c.error("capabilities", "must be a list of capabilities")
        raw_caps = []
    for i, cap in enumerate(raw_caps):
        cap_where = f"{where}.capabilities[{i}]"
        if isinstance(cap, str):
            cap = {"name": cap}
        if not isinstance(cap, dict) or not isinstance(cap.get("name"), str):
            sink.error("a capability needs a 'name'", field=cap_where)
            continue
        k = Checker(sink, cap, prefix=f"{cap_where}.")
        k.unknown_fields({"name", "description", "action", "inputSchema", "outputSchema", "input_schema",
                          "output_schema"})
        capabilities[cap["name"]] = {
            "action": k.get("action", str),
            "description": k.get("description", str, default=""),
            "input_schema": cap.get("input_schema", cap.get("inputSchema")),
            "output_schema": cap.get("output_schema", cap.get("outputSchema")),
        }
    return {"name": name, "type": kind, "risk": risk, "description": c.get("description", str, default=""),
            "capabilities": capabilities}
