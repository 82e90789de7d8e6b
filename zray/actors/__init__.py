"""Ray actors that keep engines resident."""
