"""What crdgen needs of a kind beyond its schema: names, printer columns, root rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from modelwerk.api.common import JsonDict, rule


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    type: Literal["string", "integer", "number", "boolean", "date"]
    json_path: str
    description: str = ""
    priority: int = 0

    def to_crd(self) -> JsonDict:
        column: JsonDict = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", "date", ".metadata.creationTimestamp")
READY = PrinterColumn("Ready", "string", '.status.conditions[?(@.type=="Ready")].status')


@dataclass(frozen=True)
class KindInfo:
    """The CRD's names and table columns; the schema comes from the pydantic classes."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    printer_columns: tuple[PrinterColumn, ...]
    categories: tuple[str, ...] = ("modelwerk",)
    # Rules on the whole object (CEL at the root can see metadata.name).
    root_validations: tuple[JsonDict, ...] = field(default_factory=tuple)

    @property
    def singular(self) -> str:
        return self.kind.lower()


NAME_FITS_LABEL = rule(
    "self.metadata.name.size() <= 63",
    "metadata.name must be at most 63 characters: it is used as a label value on child objects",
)
