"""Pure graph helpers over {step_id: [dependency ids]}."""


def find_cycle(deps):
    """The first dependency cycle as a path that returns to its start, or None.

    Reported in the direction work flows (a -> b means b depends on a).
    """
    dependents = {node: [] for node in deps}
    for node, parents in deps.items():
        for parent in parents:
            dependents.setdefault(parent, []).append(node)
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(dependents, white)
    stack_path = []

    def visit(node):
        colour[node] = grey
        stack_path.append(node)
        for nxt in dependents[node]:
            if colour[nxt] == grey:
                return stack_path[stack_path.index(nxt):] + [nxt]
            if colour[nxt] == white:
                found = visit(nxt)
                if found:
                    return found
        stack_path.pop()
        colour[node] = black
        return None

    for node in dependents:
        if colour[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def ancestors(deps):
    """{node: set of every transitive dependency} for an acyclic graph."""
    memo = {}

    def of(node):
        if node not in memo:
            memo[node] = set()
            for parent in deps.get(node, ()):
                memo[node] |= {parent} | of(parent)
        return memo[node]

    for node in deps:
        of(node)
    return memo


def descendants(deps, roots):
    """Every node downstream of `roots` (excluding the roots themselves)."""
    dependents = {}
    for node, parents in deps.items():
        for parent in parents:
            dependents.setdefault(parent, []).append(node)
    seen, todo = set(), list(roots)
    while todo:
        for child in dependents.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def sinks(deps):
    """Nodes nothing depends on, in definition order."""
    depended = {p for parents in deps.values() for p in parents}
    return [node for node in deps if node not in depended]
