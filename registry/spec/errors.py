"""Validation errors that name the file, the step and the field."""
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SpecError:
    file: str
    step: str | None
    field: str | None
    message: str
    workflow: str | None = None

    def as_dict(self):
        return asdict(self)

    def __str__(self):
        where = [self.file or "<input>"]
        if self.workflow:
            where.append(f"workflow '{self.workflow}'")
        if self.step:
            where.append(f"step '{self.step}'")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{': '.join(where)}: {self.message}"


class SpecInvalid(Exception):
    """Raised with every error found; nothing has been written when it is raised."""

    def __init__(self, errors, warnings=()):
        self.errors = list(errors)
        self.warnings = list(warnings)
        super().__init__("\n".join(str(e) for e in self.errors))


class ErrorSink:
    """Collects errors for one file so validation reports all faults, not only the first."""

    def __init__(self, file, workflow=None):
        self.file = file
        self.workflow = workflow
        self.errors = []
        self.warnings = []

    def error(self, message, *, step=None, field=None):
        self.errors.append(SpecError(self.file, step, field, message, self.workflow))

    def warn(self, message, *, step=None, field=None):
        self.warnings.append(SpecError(self.file, step, field, message, self.workflow))
