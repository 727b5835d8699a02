"""Acting with bounded-context sequence models (the Transformer's KV cache)."""

import numpy as np
import torch

from drama.agent import ActorCritic, ActorCriticConfig
from drama.evaluate import RecurrentActor
from drama.world_model import WorldModel, WorldModelConfig


def _tiny(kind, **seq_options):
    cfg = WorldModelConfig(sequence_kind=kind, d_model=32, n_layers=1, stoch=4, classes=4,
                           encoder_depth=2, head_hidden=16, sequence_options=seq_options)
    wm = WorldModel(cfg, num_actions=3).eval()
    ac = ActorCritic(ActorCriticConfig(actor_hidden=8, critic_hidden=8, layers=1),
                     feat_dim=16 + 32, num_actions=3).eval()
    return wm, ac


def test_transformer_acts_past_its_cache_by_rebuilding_from_the_window():
    torch.manual_seed(0)
    wm, ac = _tiny("transformer", max_len=24)
    actor = RecurrentActor(wm, ac, batch=2, device=torch.device("cpu"))
    assert actor.limit == 24
    frames = np.random.default_rng(0).integers(0, 256, size=(60, 2, 64, 64, 3), dtype=np.uint8)
    for t in range(60):  # well past max_len: must not fail
        actor.act(frames[t], greedy=True)
        assert actor.steps <= 24
    # after a rebuild, the state equals a fresh pass over the window alone
    actor2 = RecurrentActor(wm, ac, batch=2, device=torch.device("cpu"))
    window = actor.history  # the last ACT_WINDOW (z, a) inputs
    assert len(window) == RecurrentActor.ACT_WINDOW
    # drive actor to a rebuild point and compare h with a replay of its window
    while actor.steps < actor.limit:
        actor.act(frames[0], greedy=True)
    hist = list(actor.history)
    torch.manual_seed(1)
    actor.act(frames[1], greedy=True)  # rebuild + one step
    z_new, a_new = actor.history[-1]
    state = wm.init_state(2)
    for z_i, a_i in [*hist, (z_new, a_new)]:
        h, state = wm.step(z_i, a_i, state)
    torch.testing.assert_close(actor.h, h)
    assert actor.steps == RecurrentActor.ACT_WINDOW + 1
    # the actor's state round-trips through state_dict (checkpoints)
    actor2.load_state_dict(actor.state_dict())
    torch.testing.assert_close(actor2.h, actor.h)
    assert actor2.steps == actor.steps and len(actor2.history) == len(actor.history)


def test_unbounded_models_carry_state_through_the_episode():
    torch.manual_seed(0)
    wm, ac = _tiny("mamba2", chunk_size=16)
    actor = RecurrentActor(wm, ac, batch=1, device=torch.device("cpu"))
    assert actor.limit is None
    frames = np.random.default_rng(0).integers(0, 256, size=(40, 1, 64, 64, 3), dtype=np.uint8)
    for t in range(40):
        actor.act(frames[t])
    assert actor.steps == 40 and actor.history == []
