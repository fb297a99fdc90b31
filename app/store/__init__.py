"""Every SQL statement of embedlab lives in this package."""
