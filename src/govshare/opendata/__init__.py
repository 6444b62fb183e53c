"""数据开放: the public, machine-readable open-data catalog (CKAN Action API, DCAT-AP 3)."""
