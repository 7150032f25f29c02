"""Which workflow a reference (uuid or name) names for an owner, whether the owner may run it, and
subprocess cycles."""
from __future__ import annotations

import uuid

from workflows_app.definitions.specs import step_type_name
from workflows_app.models import Workflow


def may_execute(owner, workflow) -> bool:
    """Whether a workflow owned by `owner` (a user; None = trusted local caller) may run `workflow`:
    staff and trusted callers any, a user only their own."""
    return _trusted(owner) or workflow.owner_id == getattr(owner, "pk", None)


def _trusted(owner) -> bool:
    return owner is None or getattr(owner, "is_staff", False)


def resolve_workflow_ref(ref, owner=None):
    """The workflow `ref` (a uuid or a name) names, as seen by `owner`; None when nothing matches.

    A name resolves within the owner's own workflows (names are unique per owner). Staff and
    trusted callers (owner None) fall back to owner-less workflows (the examples, the demo),
    then to a name held by exactly one owner; an ambiguous name resolves to nothing (use the
    uuid). A non-staff owner never reaches another user's workflow by name. A uuid resolves to
    its workflow whoever owns it: callers check ``may_execute``."""
    qs = Workflow.objects.select_related("current_version", "owner")
    try:
        return qs.filter(id=uuid.UUID(str(ref))).first()
    except ValueError:
        pass
    name = str(ref)[:200]
    owner_id = getattr(owner, "pk", None)
    own = qs.filter(name=name, owner_id=owner_id) if owner_id else qs.filter(name=name, owner__isnull=True)
    found = own.first()
    if found is not None or not _trusted(owner):
        return found
    found = qs.filter(name=name, owner__isnull=True).first()
    if found is not None:
        return found
    matches = list(qs.filter(name=name)[:2])
    return matches[0] if len(matches) == 1 else None


def resolve_for(ref, owner):
    target = resolve_workflow_ref(ref, owner)
    return target if target is not None and may_execute(owner, target) else None


def subprocess_cycle(root: tuple, ref: str, owner, depth: int = 0) -> bool:
    """True when following subprocess references from workflow `ref` reaches the root
    (name, owner id, workflow id); each target's references resolve as its own owner sees them."""
    target = resolve_for(ref, owner)
    if target is None or depth > 20:
        return depth > 20
    name, owner_id, workflow_id = root
    if str(target.id) == workflow_id or (target.name == name and target.owner_id == owner_id):
        return True
    steps = target.current_version.steps if target.current_version_id else []
    return any(
        subprocess_cycle(root, s["workflow_id"], target.owner, depth + 1)
        for s in steps
        if step_type_name(s) == "subprocess" and s.get("workflow_id")
    )
