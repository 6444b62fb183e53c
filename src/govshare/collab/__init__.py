"""Business collaboration (业务协同): BPMN processes, one-window cases, department tasks."""
