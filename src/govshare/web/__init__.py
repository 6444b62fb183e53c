"""Console plumbing shared by the domains' pages: filters, the base layout, sign-in."""
