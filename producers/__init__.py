"""What integration teams and operators use to put work on the queues, and the CLI."""
