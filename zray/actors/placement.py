"""Where the engine actors go: GPU shares, actor counts, and one placement-group bundle per GPU.

On a cluster with GPUs, actors that hold a GPU share are pinned: a placement group reserves each
GPU, and actor i of every role goes to GPU slot i. Left to itself Ray packs fractional
shares, so two 0.5-GPU image actors could share one card while another card idles, or a narration
actor could find no share left anywhere.
"""

from __future__ import annotations

import logging
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group

from zray.actors.cluster import ClusterError
from zray.config import ActorConfig, ActorsConfig
from zray.engines.vram import engine_footprint, shares

# GPU shares for roles whose engines the VRAM table (zray.engines.vram) does not know, such as a
# custom `module:Class` engine that declares uses_gpu: one card holds one actor of each role.
GPU_SHARE = {"image": 0.5, "tts": 0.2, "music": 0.3, "video": 0.5}
# How long to wait for the cluster to reserve the GPUs: an autoscaler may have to start GPU nodes.
RESERVE_TIMEOUT_S = 1800.0
RESERVE_WAIT_S = 60.0
log = logging.getLogger("zray")


def role_footprints(roles: dict[str, list[tuple[str, Any]]]) -> dict[str, float | None]:
    """GiB per role from the VRAM table: role -> [(engine name, settings), ...] (the voice role may
    hold several engines: the largest counts); None for a role with an engine the table lacks."""
    out: dict[str, float | None] = {}
    for role, engines in roles.items():
        rows = [engine_footprint(name, settings) for name, settings in engines]
        out[role] = None if not rows or None in rows else max(row.gib for row in rows if row is not None)
    return out


def default_shares(uses_gpu: dict[str, bool], footprints: dict[str, float | None] | None) -> dict[str, float]:
    """GPU shares of the roles whose engines use a GPU: in proportion to their measured memory when
    the VRAM table knows every one of them, else the fixed GPU_SHARE."""
    gpu_roles = [role for role, gpu in uses_gpu.items() if gpu]
    known = {role: (footprints or {}).get(role) for role in gpu_roles}
    if gpu_roles and all(value is not None for value in known.values()):
        return shares({role: float(value) for role, value in known.items() if value is not None})
    fixed = {role: GPU_SHARE[role] for role in gpu_roles}
    total = sum(fixed.values())
    # With a video actor the fixed shares add up to more than a card: scaled to fit one.
    return fixed if total <= 1 else {role: int(share / total * 100) / 100 for role, share in fixed.items()}


def actor_plans(
    actors: ActorsConfig,
    uses_gpu: dict[str, bool],
    cluster_gpus: float,
    *,
    footprints: dict[str, float | None] | None = None,
) -> dict[str, tuple[float, int, float]]:
    """role -> (GPU share per actor, number of actors, CPUs per actor), filling in config left unset.

    Shares left unset come from the VRAM table (`footprints`: role -> GiB, from `role_footprints`),
    so a card's share of each actor follows what its model really takes in its mode. A role with a
    GPU share gets one actor per GPU slot, so every card holds a full set of models and no role
    waits on another card. The slots are the cluster's GPUs, or more when config asks for more
    actors of a role than there are GPUs yet (an autoscaler adds the nodes).
    """
    settings: dict[str, ActorConfig] = {role: getattr(actors, role) for role in uses_gpu}
    defaults = default_shares({r: g and cluster_gpus > 0 for r, g in uses_gpu.items()}, footprints)
    role_shares: dict[str, float] = {}
    for role in uses_gpu:
        configured = settings[role].num_gpus
        role_shares[role] = configured if configured is not None else defaults.get(role, 0.0)
    asked = [settings[role].count or 0 for role, share in role_shares.items() if share > 0]
    slots = max([int(cluster_gpus), *asked])
    plans = {}
    for role, share in role_shares.items():
        count = settings[role].count or (max(1, slots) if share > 0 else 1)
        plans[role] = (share, count, settings[role].num_cpus)
    return plans


def gpu_bundles(plans: dict[str, tuple[float, int, float]], gpus: int) -> list[dict[str, float]] | None:
    """Bundles of one GPU for the actors with a GPU share (role -> (share, count, cpus)), actor i of
    a role in bundle i; None when there is nothing to pin or a bundle's shares exceed one GPU.

    There are as many bundles as GPUs, or as actors of the largest role when config asks for more
    than the cluster has now: an autoscaler then adds GPU nodes for the bundles that do not fit."""
    pinned = [plan for plan in plans.values() if plan[0] > 0]
    if not pinned:
        return None
    count = max(gpus, *(n for _, n, _ in pinned))
    shares, cpus = [0.0] * count, [0.0] * count
    for share, n, num_cpus in pinned:
        for i in range(n):
            shares[i % count] += share
            cpus[i % count] += num_cpus
    if max(shares) > 1 + 1e-9:
        log.warning(
            "the actors' GPU shares add up to %.2f GPUs on one card; leaving their placement to Ray",
            max(shares),
        )
        return None
    return [{"GPU": 1.0, **({"CPU": c} if c > 0 else {})} for c in cpus]


def reserve(bundles: list[dict[str, float]]) -> list[PlacementGroup]:
    """A placement group per bundle (per GPU), all ready, or a clear error after RESERVE_TIMEOUT_S.

    One group per GPU rather than one group of many bundles: when a node dies, Ray keeps trying
    to re-place a group's lost bundles and, on a full cluster, busy-spins its control process doing
    so (ray-project/ray#65007); a group of its own can simply be removed and asked for again.
    """
    groups = [placement_group([bundle]) for bundle in bundles]
    waited = 0.0
    while len(
        ray.wait([g.ready() for g in groups], num_returns=len(groups), timeout=RESERVE_WAIT_S)[0]
    ) < len(groups):
        waited += RESERVE_WAIT_S
        if waited >= RESERVE_TIMEOUT_S:
            for group in groups:
                remove_placement_group(group)
            raise ClusterError(
                f"the cluster could not reserve {len(bundles)} GPU(s) for zray's actors in "
                f"{RESERVE_TIMEOUT_S:.0f} s (other jobs hold them, or no GPU node can be added); "
                "see `ray status`"
            )
        log.warning(
            "still waiting for %d GPU(s) for the actors (%.0f s); see `ray status`", len(bundles), waited
        )
    log.info("reserved %d GPU(s) for the actors", len(bundles))
    return groups


def group_nodes(groups: list[PlacementGroup]) -> list[str | None]:
    """The node each one-bundle group sits on (None while it is not placed), in one GCS call."""
    table = ray.util.placement_group_table()
    placed = [table.get(g.id.hex(), {}).get("bundles_to_node_id", {}).get(0) for g in groups]
    return [node or None for node in placed]
