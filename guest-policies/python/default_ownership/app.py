"""dockhand's default ownership rules in Python; the same verdicts as the
bundled Rust policy (guest-policies/default-ownership), rule by rule."""

import wit_world
import dockhand_policy as dp


class WitWorld(wit_world.WitWorld):
    def describe(self):
        reads = dp.reads().names().mount_destinations()
        return dp.policy_info("default-ownership-py", "0.1.0",
                              reads.labels(dp.ALLOC_ID, dp.NODE_ID).env(dp.ENV_ALLOC_ID))

    def classify(self, ctx, batch):
        return [classify_one(ctx.node.id, c) for c in dp.containers(batch)]


def classify_one(node_id, c):
    node = c.label(dp.NODE_ID)
    if node is not None and not node_id:
        return dp.unknown(f"node_id label ({node}) but this node's id is not known yet")
    if node is not None and node != node_id:
        return dp.not_nomad(f"node_id label names another node ({node})")
    env_alloc, alloc = c.env(dp.ENV_ALLOC_ID), c.label(dp.ALLOC_ID)
    if alloc == "":
        return dp.unknown("alloc_id label is empty")
    if alloc is not None and env_alloc is not None and env_alloc != alloc:
        return dp.unknown(f"alloc_id label ({alloc}) disagrees with NOMAD_ALLOC_ID ({env_alloc})")
    if alloc is not None:
        return dp.owned(alloc, "alloc_id label")
    from_name = dp.nomad_name_alloc_id(c) if dp.has_alloc_mounts(c) else None
    if from_name is not None and not c.env_known:
        return dp.need_inspect("alloc mounts and Nomad name but no label")
    if from_name is not None and env_alloc is not None and env_alloc != from_name:
        return dp.unknown(f"name names alloc {from_name} but NOMAD_ALLOC_ID is {env_alloc}")
    if from_name is not None:
        return dp.owned(from_name, "alloc mounts and Nomad task name")
    if env_alloc is not None:
        return dp.unknown("NOMAD_ALLOC_ID set but no Nomad label, name or mounts")
    return dp.not_nomad("no Nomad label, and not both alloc mounts and a Nomad name")
