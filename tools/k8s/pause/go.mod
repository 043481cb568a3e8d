// The pod sandbox's pause program (scripts/k8s_node.py builds it into the pause image): with no
// registry, registry.k8s.io/pause cannot be pulled, so the node carries a static one of its own.
module shop.local/tools/k8s/pause

go 1.22
