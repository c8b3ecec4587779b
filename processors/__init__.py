"""The join worker: inference and feedback joined into preference pairs, and the replay of a range."""
