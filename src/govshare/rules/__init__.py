"""Rules several domains apply, below every domain: the working-day calendar and the
clock deadlines are counted by, spreadsheet cells made safe, field messages. The
front-end node may import this package without importing the hub's domains."""
