"""The step counters of an adversarial module, kept in a checkpoint's ``ganlab`` section
with every rank's RNG states, and restored from it on resume."""

from __future__ import annotations

from typing import Any

from ganlab.rng import every_ranks_rng_state, this_ranks_rng_state

# g_steps: generator updates done; images_seen: real images shown to D over all processes;
# nonfinite_skips: updates skipped for a non-finite loss or gradient; d_updates: D updates
# done (the D penalties' lazy cycle).
COUNTERS = ("g_steps", "images_seen", "nonfinite_skips", "d_updates")


def save_counters(module: Any, checkpoint: dict[str, Any]) -> None:
    # Saves happen between training steps, so the n_critic cycle is always complete.
    checkpoint.setdefault("ganlab", {}).update(
        {name: getattr(module, name) for name in COUNTERS} | every_ranks_rng_state())


def load_counters(module: Any, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Set ``module``'s counters from ``checkpoint``; this rank's RNG states to restore
    before the first step."""
    state = checkpoint.get("ganlab", {})
    for name in COUNTERS:
        setattr(module, name, int(state.get(name, 0)))
    return this_ranks_rng_state(state)
