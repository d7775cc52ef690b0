"""Human scores: each write checked, changed, audited in one transaction."""
