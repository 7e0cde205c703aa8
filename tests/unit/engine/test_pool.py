"""The state pool against the out-of-place ``advance``: the same state, seen the same way by a step."""

import torch

from forecaster.engine.pool import StatePool
from forecaster.models import StateEntry, advance, init_state
from forecaster.models.base import COUNTER

SPEC = {
    "plain": StateEntry((2,)),
    "ring": StateEntry((2, 3), ring_axis=1),
    "delay": StateEntry((2, 3), ring_axis=1, delay=True),
}


def test_a_delay_line_hands_a_step_the_entry_written_w_steps_ago() -> None:
    pool, slots = StatePool(SPEC, capacity=8, device=torch.device("cpu")), torch.tensor([5, 2])
    state = init_state(SPEC, 2)
    for step in range(7):
        rows = pool.gather(slots)
        assert torch.equal(rows[COUNTER], state[COUNTER])
        assert torch.equal(rows["plain"], state["plain"]) and torch.equal(rows["ring"], state["ring"])
        head = rows["delay"]
        assert head.shape == (2, 2, 1)  # the head alone, not the whole ring
        assert torch.equal(head, state["delay"][..., :1])  # what a step reads either way
        written_then = float(step - 3) if step >= 3 else 0.0  # zero before anything was written
        assert torch.equal(head, torch.full((2, 2, 1), written_then))
        update = {k: torch.full((2, 2), float(step)) for k in SPEC}
        pool.scatter(slots, rows[COUNTER], update)
        state = advance(SPEC, state, update)
