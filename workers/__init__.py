"""Stage workers: one dramatiq actor per stage and queue, each a thin shell over a pure handler."""
