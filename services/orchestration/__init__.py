"""Running workflows: starting instances, choosing the next action, completing actions, firing triggers.

Decisions are functions of the inline read models; every effect is an append guarded by the versions it
was decided on, with event ids derived from the causing event so a redelivered event changes nothing.
"""
