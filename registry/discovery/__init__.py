"""Discovery (DESIGN §6.7): find definitions by capability filters, rank them for a free-text
task, and suggest chains of workflows from available inputs to a goal."""
