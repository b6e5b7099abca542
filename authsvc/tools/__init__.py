"""What the command line offers besides serving: explain, tokens, check-nginx, report."""
