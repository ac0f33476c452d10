"""What a Model's card says that the cluster cannot know: intended use, limitations, who owns it.

`kubectl modelwerk card MODEL[:VERSION]` renders these next to what the registry recorded
(training data, validation, evaluation, lineage, baseline, where it serves).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from modelwerk.api.common import ApiModel

Text = Annotated[str, StringConstraints(max_length=4096)]
Name = Annotated[str, StringConstraints(max_length=256)]


class ModelCard(ApiModel):
    """Free text for the people who approve, audit or use the model; the operator does not
    read it."""

    intended_use: Text | None = None
    """What the model is for, and for whom."""
    limitations: Text | None = None
    """Where it must not be relied on: known failure modes, data it has not seen."""
    owner: Name | None = None
    """The team or person accountable for the model."""
    contact: Name | None = None
    """Where to reach the owner, e.g. an e-mail address or a chat channel."""
