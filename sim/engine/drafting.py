"""One cycle's drafting outcome for the dynamic servers: how many tokens the draft proposed and
how many the target accepted.

The accepted depth comes from the replayed record of the request (by output position), its own
hazards (per-request mode), its context bucket, or the run's depth stream (:class:`Depths`); the
draft may propose fewer tokens than asked (an n-gram draft with no match), and the
``confidence`` policy drafts token by token and may stop early. Every draw comes from the run's
one generator, in the order the servers ask.
"""

from __future__ import annotations

import numpy as np

from sim.engine.workload import Workload
from sim.models.acceptance import AcceptanceModel, Depths
from sim.policies.base import Policy
from sim.policies.library import Confidence


class Drafting:
    """One cycle's drafting outcome for the dynamic servers: (drafted, accepted, draft probs).

    The accepted depth comes from the replayed record of the request, its own hazards
    (per-request mode), its context bucket, or the run's depth stream; the ``confidence`` policy
    drafts token by token and may stop early.
    """

    def __init__(
        self,
        policy: Policy,
        model: AcceptanceModel,
        depths: Depths,
        rng: np.random.Generator,
        workload: Workload,
    ) -> None:
        self.policy, self.model, self.depths, self.rng = policy, model, depths, rng
        self.confident = isinstance(getattr(policy, "inner", policy), Confidence)
        self.bucketed = len(model.edges) > 0
        self.rows = workload.trace_row if model.request_survival is not None else None
        self.prompts = workload.prompt_tokens
        self.by_position = model.positions is not None and self.rows is not None
        # plain: the depth comes straight from the run's stream (the servers inline that case)
        self.plain = not (self.confident or self.by_position or self.bucketed
                          or model.short_proposals or self.rows is not None)

    def draw(
        self, rid: int, cycle: int, context: int, tau: int
    ) -> tuple[int, int, list[float] | None]:
        """(drafted, accepted, draft probs) of request ``rid``'s cycle asking for ``tau``."""
        model = self.model
        if self.by_position and not self.confident:
            assert self.rows is not None
            pos = context - int(self.prompts[rid])
            drafted, accepted = model.draw_at(self.rng, int(self.rows[rid]), pos, tau)
            return drafted, accepted, None
        bucket = model.bucket(context) if self.bucketed else 0
        if model.short_proposals:
            tau = model.proposed(self.rng, tau)
        if self.confident and tau > 0:
            return model.sample_with_confidence(self.rng, tau, bucket, self.policy.keep_drafting)
        if self.rows is not None:
            depth = int(model.draw_rows(self.rng, self.rows[rid : rid + 1])[0])
        else:
            depth = self.depths.next(bucket)
        return tau, min(tau, depth), None
