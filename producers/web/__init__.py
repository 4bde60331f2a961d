"""The web application ``omvant serve`` runs: the staff console (``pages/``) and the HTTP API."""
