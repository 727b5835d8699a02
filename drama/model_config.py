"""The settings dataclasses of the world model, the replay and the actor-critic, and the
sequence-model kinds, backends and options they are checked against.

Torch-free on purpose: resolving a run config (drama.config, which the workflow does at parse
time) needs these and nothing that imports torch. The model modules (drama.world_model,
drama.replay, drama.agent, drama.sequence) import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drama.settings import build_settings, check_settings, official_defaults

SEQUENCE_KINDS = ("mamba2", "mamba1", "transformer", "gru")
SEQUENCE_BACKENDS = ("auto", "torch", "mamba_ssm")

_STACK = {"dropout": 0.1, "norm_eps": 1e-5}  # residual dropout (ICLR release), RMSNorm eps
SEQUENCE_OPTIONS: dict[str, dict] = {
    "mamba2": {
        **_STACK, "d_state": 16, "d_conv": 4, "expand": 2, "headdim": 64, "ngroups": 1,
        "chunk_size": 256, "A_init_range": (1.0, 16.0), "dt_min": 0.001, "dt_max": 0.1,
        "dt_init_floor": 1e-4, "device": None,
    },
    "mamba1": {
        **_STACK, "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": "auto", "dt_min": 0.001,
        "dt_max": 0.1, "dt_init_floor": 1e-4, "dt_scale": 1.0,
        "scan": "chunked",  # torch backend: "chunked" (default) or "sequential" (reference)
        "scan_chunk": None,  # chunked scan's chunk length; None: ceil(sqrt(L))
        "device": None,
    },
    # d_ff 1024 = 2 x 512 as the official code's feed-forward (hidden_dim = feat_dim * 2)
    "transformer": {"n_heads": 8, "d_ff": None, "dropout": 0.1, "max_len": 128, "device": None},
    "gru": {**_STACK, "device": None},
}
"""Options per sequence kind with their defaults (drama.sequence.make_sequence_model).
`device` (optional) builds the parameters there and, with backend="auto", lets a CPU device
choose the torch backend on a CUDA machine."""


@dataclass
@official_defaults("world_model")
class WorldModelConfig:
    """World-model architecture, loss and optimiser; defaults are the official code's."""

    sequence_kind: str
    """Sequence model: mamba2 (Drama), mamba1, transformer or gru (drama.sequence)."""
    sequence_backend: str
    """drama.sequence backend: auto, torch or mamba_ssm (fused CUDA kernels)."""
    sequence_options: dict[str, Any]
    """Extra options for make_sequence_model (e.g. d_state, dropout); empty = paper defaults."""
    d_model: int
    """Width of the sequence model and of d_t (HiddenStateDim)."""
    n_layers: int
    """Sequence-model layers."""
    stoch: int
    """Number of categorical latents (CategoricalDim)."""
    classes: int
    """Classes per categorical (ClassDim)."""
    unimix: float
    """Uniform mix of posterior and prior probabilities."""
    encoder_depth: int
    """Base channel count of encoder and decoder (Depth)."""
    encoder_mults: tuple[int, ...]
    """Channel multipliers per conv (Mults); the first conv has stride 1, the rest stride 2."""
    kernel: int
    """Conv / transposed-conv kernel size."""
    head_hidden: int
    """Hidden units of the reward and termination heads."""
    reward_bins: int
    """Two-hot bins of the reward head."""
    reward_low: float
    """Lowest bin (symlog space)."""
    reward_high: float
    """Highest bin (symlog space)."""
    free_bits: float
    """KL free bits (nats): each KL term is max(free_bits, KL)."""
    kl_dyn: float
    """Weight of the dynamics KL (gradient into the prior)."""
    kl_rep: float
    """Weight of the representation KL (gradient into the posterior)."""
    lr: float
    """LaProp learning rate."""
    betas: tuple[float, float]
    """LaProp (beta1, beta2); the official code uses the class defaults (0.9, 0.999)."""
    eps: float
    """LaProp epsilon."""
    weight_decay: float
    """LaProp decoupled weight decay (p -= wd * p per update, official code)."""
    grad_clip: float
    """Global gradient-norm clip (Max_grad_norm)."""
    warmup_updates: int
    """Linear learning-rate warm-up length in updates."""
    amp: bool
    """bf16 autocast when the model is on CUDA (Use_amp); CPU always runs fp32."""

    def __post_init__(self) -> None:
        check_settings(self, "world_model")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldModelConfig:
        """Build from a mapping; an unknown key is a ValueError naming it."""
        return build_settings(cls, d, "world_model")


@dataclass
@official_defaults("replay", derived=("img_count_scale",))
class ReplayConfig:
    """Replay and DFS settings; defaults are the paper's / official code's."""

    capacity: int
    """Transitions held (BufferMaxLength); older ones are overwritten."""
    sampling: str
    """'dfs' (Dynamic Frequency-based Sampling) or 'uniform' (the paper's ablation)."""
    wm_tau: float
    """tau: temperature of the world-model start distribution exp(-c_i / tau)."""
    img_tau: float
    """tau_img: temperature of the imagination start softmax(s_i / tau_img)."""
    alpha: float
    """alpha: weight of the scaled imagination count I~_i in s_i."""
    beta: float
    """beta: weight of the penalty max(0, c_i - I~_i) in s_i."""
    img_count_scale: float | None
    """I~_i = I_i / img_count_scale. Derived, not a setting: drama.config.resolve_config sets it
    to actor_critic.imag_batch / train.wm_batch (the official code's ImagineBatchSize /
    BatchSize = 64); None until then (a DFS buffer needs it)."""
    warmup: int
    """Random-policy steps before training starts (``ready`` is len > warmup)."""
    cross_episodes: bool
    """True (official): any start <= N - L; False: sampled windows never span an env reset
    (see drama/replay.py's module docstring)."""

    def __post_init__(self) -> None:
        check_settings(self, "replay")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayConfig:
        """Build from a mapping; an unknown key is a ValueError naming it."""
        return build_settings(cls, d, "replay")


@dataclass
@official_defaults("actor_critic")
class ActorCriticConfig:
    """Actor-critic hyperparameters; defaults are the official Drama code's."""

    actor_hidden: int
    """Actor MLP width."""
    critic_hidden: int
    """Critic MLP width (wider than the actor, as in the official code)."""
    layers: int
    """Hidden layers (Linear + RMSNorm + SiLU) in the actor and in the critic."""
    value_bins: int
    """Two-hot bins of the critic output, over symlog space [value_low, value_high]."""
    value_low: float
    """Lowest critic bin (symlog space)."""
    value_high: float
    """Highest critic bin (symlog space)."""
    gamma: float
    """Discount gamma."""
    lam: float
    """lambda of the lambda-return."""
    entropy_coef: float
    """Entropy bonus coefficient eta."""
    return_norm_decay: float
    """EMA decay of the return percentiles (S)."""
    return_norm_low: float
    """Lower return percentile."""
    return_norm_high: float
    """Upper return percentile."""
    slow_critic_decay: float
    """EMA decay of the slow critic, updated after every actor-critic update."""
    slow_reg_coef: float
    """Weight of the two-hot loss towards the slow critic's lambda-return."""
    unimix: float
    """Uniform mix of the policy (official Agent.Unimix_ratio = 0)."""
    input_norm_clip: float
    """Clip of the actor's running mean/std input normalisation."""
    lr: float
    """LaProp learning rate."""
    eps: float
    """LaProp epsilon."""
    betas: tuple[float, float]
    """LaProp betas (official LaProp defaults; the agent does not override them)."""
    weight_decay: float
    """LaProp weight decay (none for the agent in the official code)."""
    grad_clip: float
    """Global gradient-norm clip."""
    warmup_updates: int
    """Linear learning-rate warm-up length (updates)."""
    imag_batch: int
    """Imagination start states per update (drawn by the replay's imagination sampler)."""
    imag_context: int
    """Real frames fed to the sequence model before imagining."""
    imag_horizon: int
    """Imagined steps H."""
    acting: str
    """How the agent acts. ``context`` (official ``train.py`` + ``calc_last_dist_feat``): the
    last ``acting_context`` (frame, action) pairs of the episode run through the sequence
    model from a fresh state; the agent acts on (prior sample of the last output d, d), i.e.
    on its prediction of the current frame; the first action of an episode is random.
    ``recurrent`` (our correction): carried state, posterior of the current frame."""
    acting_context: int
    """Frames kept for ``acting=context`` (RealityContextLength)."""
    imag_start: str
    """Imagination start. ``prior`` (official ``imagine_data2``): all C context frames and their
    C real actions are observed, s_0 = (prior sample of d_{C-1}, d_{C-1}). ``posterior`` (our
    correction): the first C-1 are observed, s_0 = (posterior z_{C-1}, d_{C-2})."""
    return_form: str
    """Reward/termination alignment and lambda-return: ``official`` or ``dreamerv3`` (see
    drama/agent.py's module docstring)."""

    def __post_init__(self) -> None:
        check_settings(self, "actor_critic")


def feature_dim(cfg: WorldModelConfig) -> int:
    """Width of the actor-critic's input s_t = concat(z_t, h_t): stoch * classes + d_model."""
    return cfg.stoch * cfg.classes + cfg.d_model
