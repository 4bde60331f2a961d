"""Templates ("mallar"): what a resident reads comes from one."""
