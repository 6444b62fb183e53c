"""The exchange system (交换体系): packages, the hub's store-and-forward, nodes and tasks."""
