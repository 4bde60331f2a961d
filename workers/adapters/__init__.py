"""Outside systems: one interface per system, its real implementation, its simulator."""
