"""Components that shape model data: reward penalties (and, later, transition filters)."""
