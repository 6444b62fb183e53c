"""考核评估: department evaluation and platform indicators, computed monthly from records."""
