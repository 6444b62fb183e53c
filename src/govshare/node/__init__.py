"""The front-end node (前置机): a department's agent between its databases and the hub."""
