"""数据质量 (data quality): rules per item, scans of the shared stores, failing values."""
